"""A catalogue of user mistakes: each row makes one, and the error says what and where.

Every row asserts the error's type and that its message names the offending
thing (the argument, the value, the path, the file, the feature), so a user
can fix it without reading our code.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from statefire.frame import (
    CallbackSignatureError,
    CounterTypeError,
    CounterValueError,
    CycleError,
    Feature,
    NameConflictError,
    State,
    StateDictError,
    StateObject,
    UnknownNameError,
)
from statefire.features import (
    Accuracy,
    AverageOutput,
    Checkpoint,
    EarlyStopping,
    Engine,
    EngineError,
    LRScheduler,
    ProgressBar,
    RunningAverage,
    TerminateOnNan,
)
from statefire.features.checkpoint import CheckpointError, UnsafeCheckpointError


class Knob(Feature):
    category = "params"
    value = StateObject(0)
    tick = StateObject(0)


def _engine(name: str = "trainer", data: Any = (1, 2, 3), process: Any = None) -> Engine:
    return Engine(name, process or (lambda engine, batch: batch), data=list(data) if data is not None else None)


def _checkpoint_file(tmp_path: Path) -> Path:
    """A real checkpoint of a state holding `trainer` and `knob`."""
    with State():
        knob = Knob()
        _engine()
        Checkpoint(tmp_path, trigger=knob.tick_ref)
        knob.tick = 1
    return tmp_path / "checkpoint_1.pt"


# -- the rows: (what the user did, the error type, what the message must name) ------------


def unknown_state_name(tmp_path: Path) -> None:
    _engine()
    State.current().trainr


def unknown_ref_name(tmp_path: Path) -> None:
    _engine().n_sample_ref


def unknown_container_ref(tmp_path: Path) -> None:
    _engine()
    State.current().engines.add_ref


def duplicate_feature_name(tmp_path: Path) -> None:
    _engine("trainer")
    Knob(name="trainer")


def reserved_feature_name(tmp_path: Path) -> None:
    Knob(name="metrics")


def every_zero(tmp_path: Path) -> None:
    _engine().n_epoch_completed_ref.attach(print, every=0)


def every_negative(tmp_path: Path) -> None:
    _engine().n_epoch_completed_ref(every=-3)


def every_and_once(tmp_path: Path) -> None:
    _engine().n_epoch_completed_ref.attach(print, every=2, once=4)


def filtered_ref_filtered_again(tmp_path: Path) -> None:
    _engine().n_epoch_completed_ref(every=2).attach(print, every=3)


def callback_with_two_arguments(tmp_path: Path) -> None:
    def on_epoch(engine, value):
        pass

    _engine().n_epoch_completed_ref.attach(on_epoch)


def callback_not_callable(tmp_path: Path) -> None:
    _engine().n_epoch_completed_ref.attach("print")


def counter_set_to_float(tmp_path: Path) -> None:
    _engine().n_samples = 1.5


def counter_set_negative(tmp_path: Path) -> None:
    _engine().n_samples = -1


def run_on_another_state(tmp_path: Path) -> None:
    with State():
        trainer = _engine()
    _engine("evaluator").follow(trainer.n_epoch_completed_ref)


def run_on_a_feature_not_a_ref(tmp_path: Path) -> None:
    trainer = _engine()
    Engine("evaluator", lambda e, b: b, data=[1], run_on=trainer)


def checkpoint_of_another_structure(tmp_path: Path) -> None:
    path = _checkpoint_file(tmp_path)
    knob = Knob(name="other_knob")
    Checkpoint(tmp_path, trigger=knob.tick_ref)
    Checkpoint.load(path)


def truncated_checkpoint(tmp_path: Path) -> None:
    path = _checkpoint_file(tmp_path)
    path.write_bytes(path.read_bytes()[:300])
    Checkpoint.load(path)


def corrupted_checkpoint(tmp_path: Path) -> None:
    path = _checkpoint_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[40:80] = b"\xff" * 40  # damage the zip headers
    path.write_bytes(bytes(data))
    Checkpoint.load(path)


def not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    Checkpoint.load(path)


def plain_pickle_as_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_1.pt"
    path.write_bytes(pickle.dumps({"state": {}}))
    with warnings.catch_warnings():  # torch notes the unusual pickle protocol before refusing it
        warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
        Checkpoint.load(path)


class _Payload:
    pass


def checkpoint_with_a_pickled_object(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_1.pt"
    torch.save({"format": "statefire-checkpoint", "evil": _Payload()}, path)
    Checkpoint.load(path)


def missing_checkpoint_file(tmp_path: Path) -> None:
    Checkpoint.load(tmp_path / "checkpoint_7.pt")


def checkpoint_trigger_inside_a_step(tmp_path: Path) -> None:
    Checkpoint(tmp_path, trigger=_engine().output_ref)


def checkpoint_score_not_a_number(tmp_path: Path) -> None:
    knob = Knob()
    Checkpoint(tmp_path, trigger=knob.tick_ref, score_ref=knob.value_ref, mode="max")
    knob.value = "best"
    knob.tick = 1


def empty_data(tmp_path: Path) -> None:
    _engine(data=[]).run()


def no_data_and_no_epoch_length(tmp_path: Path) -> None:
    _engine(data=None).run()


def process_not_callable(tmp_path: Path) -> None:
    Engine("trainer", "train_step", data=[1])


def n_epochs_zero(tmp_path: Path) -> None:
    Engine("trainer", lambda e, b: b, data=[1], n_epochs=0)


def run_inside_its_own_run(tmp_path: Path) -> None:
    trainer = _engine()
    trainer.n_iteration_completed_ref.attach(lambda: trainer.run())
    trainer.run()


def metric_needs_tensors(tmp_path: Path) -> None:
    evaluator = _engine("evaluator", data=[1, 2], process=lambda e, b: (0.3, 1))
    Accuracy(engine=evaluator)
    evaluator.run()


def metric_needs_a_pair(tmp_path: Path) -> None:
    evaluator = _engine("evaluator", data=[1, 2], process=lambda e, b: 0.3)
    Accuracy(engine=evaluator)
    evaluator.run()


def metric_with_unknown_mode(tmp_path: Path) -> None:
    Accuracy(engine=_engine(), mode="per-epoch")


def callback_cycle(tmp_path: Path) -> None:
    a, b = Knob(name="a"), Knob(name="b")
    a.value_ref.attach(lambda v: setattr(b, "value", v + 1))
    b.value_ref.attach(lambda v: setattr(a, "value", v + 1))
    a.value = 0


def strict_state_dict_mismatch(tmp_path: Path) -> None:
    _engine()
    State.current().load_state_dict({"engines": {"trainer": {"n_samples": 3, "n_sample": 4}}})


def early_stopping_patience_zero(tmp_path: Path) -> None:
    trainer = _engine()
    EarlyStopping(trainer.output_ref, 0, trainer=trainer)


def early_stopping_trainer_not_an_engine(tmp_path: Path) -> None:
    trainer = _engine()
    EarlyStopping(trainer.output_ref, 2, trainer="trainer")


def terminate_on_nan_needs_an_engine(tmp_path: Path) -> None:
    TerminateOnNan(Knob().value_ref)


def lr_scheduler_given_a_number(tmp_path: Path) -> None:
    LRScheduler(0.1, trigger=_engine().n_epoch_completed_ref)


def progress_bar_every_zero(tmp_path: Path) -> None:
    ProgressBar(_engine(), every=0)


def data_not_iterable(tmp_path: Path) -> None:
    Engine("trainer", lambda e, b: b, data=5)


def batch_size_fn_not_callable(tmp_path: Path) -> None:
    Engine("trainer", lambda e, b: b, data=[1], batch_size_fn="x")


def batch_size_fn_returns_a_fraction(tmp_path: Path) -> None:
    Engine("trainer", lambda e, b: b, data=[1], batch_size_fn=lambda batch: 2.5).run()


def average_output_of_pairs(tmp_path: Path) -> None:
    evaluator = _engine("evaluator", data=[1, 2], process=lambda e, b: (torch.zeros(2, 3), torch.zeros(2)))
    AverageOutput(engine=evaluator)
    evaluator.run()


def running_average_of_a_vector(tmp_path: Path) -> None:
    trainer = _engine(process=lambda e, b: torch.ones(4))
    RunningAverage(engine=trainer)
    trainer.run()


def run_on_a_removed_feature(tmp_path: Path) -> None:
    trainer = _engine()
    trainer.remove()
    _engine("evaluator").follow(trainer.n_epoch_completed_ref)


def checkpoint_dirname_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a directory")
    Checkpoint(tmp_path / "notes.txt", trigger=Knob().tick_ref)


def two_checkpoints_with_one_series(tmp_path: Path) -> None:
    knob = Knob()
    Checkpoint(tmp_path, trigger=knob.tick_ref, prefix="model")
    Checkpoint(tmp_path, trigger=knob.tick_ref, prefix="model", name="best")


def latest_of_several_series(tmp_path: Path) -> None:
    knob = Knob()
    Checkpoint(tmp_path, trigger=knob.tick_ref, name="last")
    Checkpoint(tmp_path, trigger=knob.tick_ref, name="best")
    knob.tick = 1
    Checkpoint.latest(tmp_path)


def disk_full(tmp_path: Path) -> None:
    knob = Knob()
    Checkpoint(tmp_path, trigger=knob.tick_ref)
    # A real ENOSPC from the kernel: the temp file of the save is /dev/full.
    (tmp_path / f"checkpoint_1.pt.tmp-{os.getpid()}").symlink_to("/dev/full")
    knob.tick = 1


def state_not_plain_data(tmp_path: Path) -> None:
    knob = Knob()
    Checkpoint(tmp_path, trigger=knob.tick_ref)
    knob.value = _Payload()
    knob.tick = 1


def _crafted_checkpoint(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = _checkpoint_file(tmp_path)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    Knob()
    _engine()
    Checkpoint.load(path)


def checkpoint_without_state(tmp_path: Path) -> None:
    _crafted_checkpoint(tmp_path, lambda payload: payload.pop("state"))


def checkpoint_without_rng(tmp_path: Path) -> None:
    _crafted_checkpoint(tmp_path, lambda payload: payload.pop("rng"))


def checkpoint_without_save_number(tmp_path: Path) -> None:
    _crafted_checkpoint(tmp_path, lambda payload: payload.pop("save_number"))


def checkpoint_of_an_unknown_version(tmp_path: Path) -> None:
    _crafted_checkpoint(tmp_path, lambda payload: payload.update(version=7))


CATALOGUE: list[tuple[Callable[[Path], None], type[BaseException], str]] = [
    (unknown_state_name, UnknownNameError, r"'trainr'.*did you mean 'trainer'"),
    (unknown_ref_name, AttributeError, r"n_sample_ref"),
    (unknown_container_ref, UnknownNameError, r"container engines has no state object 'add'.*added_ref"),
    (duplicate_feature_name, NameConflictError, r"'trainer' already exists at engines\.trainer \(Engine\).*Knob"),
    (reserved_feature_name, NameConflictError, r"'metrics' of a Knob would shadow state\.metrics"),
    (every_zero, ValueError, r"every must be a positive int, got 0"),
    (every_negative, ValueError, r"every must be a positive int, got -3"),
    (every_and_once, ValueError, r"every or once, not both \(got every=2, once=4\)"),
    (filtered_ref_filtered_again, ValueError, r"filtered ref \(every=2\) cannot take another.*every=3"),
    (callback_with_two_arguments, CallbackSignatureError, r"on_epoch\(engine, value\)"),
    (callback_not_callable, TypeError, r"callback for engines\.trainer\.n_epoch_completed must be callable, got 'print'"),
    (counter_set_to_float, CounterTypeError, r"Engine\.n_samples .* got 1\.5 of type float"),
    (counter_set_negative, CounterValueError, r"Engine\.n_samples must be a non-negative int, got -1"),
    (run_on_another_state, ValueError, r"run_on of engine 'evaluator' \(engines\.trainer\.n_epoch_completed\) belongs to another State"),
    (run_on_a_feature_not_a_ref, TypeError, r"run_on of engine 'evaluator' must be a ref.*a feature was given"),
    (checkpoint_of_another_structure, StateDictError, r"missing keys: .*params\.other_knob\.value.*unexpected keys: .*params\.knob"),
    (truncated_checkpoint, CheckpointError, r"checkpoint_1\.pt' is truncated or corrupted"),
    (corrupted_checkpoint, CheckpointError, r"checkpoint_1\.pt' is truncated or corrupted"),
    (not_a_checkpoint, CheckpointError, r"weights\.pt' is not a statefire checkpoint \(found \['weight'\]\)"),
    (plain_pickle_as_checkpoint, CheckpointError, r"checkpoint_1\.pt"),
    (checkpoint_with_a_pickled_object, UnsafeCheckpointError, r"checkpoint_1\.pt.*_Payload.*nothing was executed"),
    (missing_checkpoint_file, FileNotFoundError, r"checkpoint_7\.pt' does not exist"),
    (checkpoint_trigger_inside_a_step, ValueError, r"trigger of Checkpoint cannot be engines\.trainer\.output"),
    (checkpoint_score_not_a_number, ValueError, r"\(params\.knob\.value\) must hold a number .* got 'best'"),
    (empty_data, EngineError, r"data of engine 'trainer' is empty"),
    (no_data_and_no_epoch_length, EngineError, r"engine 'trainer' has no data"),
    (process_not_callable, TypeError, r"process of engine 'trainer' must be callable.*'train_step'"),
    (n_epochs_zero, ValueError, r"n_epochs of engine 'trainer' must be a positive int, got 0"),
    (run_inside_its_own_run, EngineError, r"engine 'trainer' is already running"),
    (metric_needs_tensors, TypeError, r"metric 'evaluator_accuracy' needs tensors .* got \(float, int\)"),
    (metric_needs_a_pair, TypeError, r"metric 'evaluator_accuracy' needs \(y_pred, y\) from engines\.evaluator\.output, got float"),
    (metric_with_unknown_mode, ValueError, r"mode of a Accuracy must be one of .* got 'per-epoch'"),
    (callback_cycle, CycleError, r"params\.a\.value -> params\.b\.value -> params\.a\.value"),
    (strict_state_dict_mismatch, StateDictError, r"unexpected keys: engines\.trainer\.n_sample\b"),
    (early_stopping_patience_zero, ValueError, r"patience of EarlyStopping must be a positive int, got 0"),
    (early_stopping_trainer_not_an_engine, TypeError, r"trainer of EarlyStopping must be an Engine.*'trainer'"),
    (terminate_on_nan_needs_an_engine, TypeError, r"TerminateOnNan on params\.knob\.value needs engine="),
    (lr_scheduler_given_a_number, TypeError, r"scheduler of LRScheduler must be .* got float: 0\.1"),
    (progress_bar_every_zero, ValueError, r"every of ProgressBar must be a positive int, got 0"),
    (data_not_iterable, TypeError, r"data of engine 'trainer' must be an iterable of batches .* got int: 5"),
    (batch_size_fn_not_callable, TypeError, r"batch_size_fn of engine 'trainer' must be callable .* got str: 'x'"),
    (batch_size_fn_returns_a_fraction, ValueError, r"batch_size_fn of engine 'trainer' returned 2\.5 .* whole number"),
    (average_output_of_pairs, TypeError, r"'evaluator_average_output' \(AverageOutput\) averages single numbers.*engines\.evaluator\.output gave tuple"),
    (running_average_of_a_vector, TypeError, r"'trainer_running_average' \(RunningAverage\).*a tensor of shape \(4,\).*OutputHandler"),
    (run_on_a_removed_feature, ValueError, r"run_on of engine 'evaluator' \(engines\.trainer\.n_epoch_completed\) belongs to no State: its Engine engines\.trainer was removed"),
    (checkpoint_dirname_is_a_file, NotADirectoryError, r"dirname of Checkpoint '.*notes\.txt' is a file, not a directory"),
    (two_checkpoints_with_one_series, ValueError, r"checkpoints 'checkpoint' and 'best' would both write model_<n>\.pt"),
    (latest_of_several_series, CheckpointError, r"several checkpoint series \(best, last\); pass prefix="),
    (disk_full, OSError, r"no space left on the device \(ENOSPC\) while writing checkpoint '.*checkpoint_1\.pt'"),
    (state_not_plain_data, CheckpointError, r"cannot save checkpoint '.*checkpoint_1\.pt': params\.knob\.value holds .*_Payload"),
    (checkpoint_without_state, CheckpointError, r"checkpoint '.*checkpoint_1\.pt' has no 'state' entry"),
    (checkpoint_without_rng, CheckpointError, r"checkpoint '.*checkpoint_1\.pt' has no 'rng' entry"),
    (checkpoint_without_save_number, CheckpointError, r"checkpoint '.*checkpoint_1\.pt' has no 'save_number' entry"),
    (checkpoint_of_an_unknown_version, CheckpointError, r"checkpoint '.*checkpoint_1\.pt' has format version 7; this statefire reads version 1: .*newer"),
]


@pytest.mark.parametrize(("mistake", "error", "message"), CATALOGUE, ids=[row[0].__name__ for row in CATALOGUE])
def test_mistake_gets_a_clear_error(tmp_path, mistake, error, message):
    with State():
        with pytest.raises(error) as caught:
            mistake(tmp_path)
    text = str(caught.value) + "".join(getattr(caught.value, "__notes__", []))
    assert re.search(message, text), text


def test_the_catalogue_has_at_least_twenty_distinct_mistakes():
    assert len({row[0] for row in CATALOGUE}) == len(CATALOGUE) >= 20
