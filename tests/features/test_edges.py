"""Regression tests for the defects found at the edges (issue 11, and issue 13's accumulation across epochs).

Each test's docstring states the defect it pins: before the fix, the test failed.
"""

from __future__ import annotations

import atexit
import gc
import itertools
import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Score

from statefire.features import (
    Accuracy,
    AverageOutput,
    Checkpoint,
    Engine,
    ScalarChart,
    SupervisedEvaluator,
    SupervisedTrainer,
    TensorBoard,
)
from statefire.features.checkpoint import CheckpointError
from statefire.frame import Params, State


@pytest.fixture(scope="module")
def digits(digit_tensors) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digit_tensors
    return x[:224], y[:224]


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 10))


# -- 1. a NaN score -------------------------------------------------------------------


def test_a_nan_score_never_displaces_the_best_checkpoint(tmp_path):
    """Defect: with mode="max" and n_saved=1, scores 0.9, NaN, 0.5 left only the 0.5 file (NaN broke the sort)."""
    with State():
        score = Score()
        best = Checkpoint(tmp_path, trigger=score.tick_ref, score_ref=score.value_ref, n_saved=1, mode="max")
        for tick, value in enumerate([0.9, math.nan, 0.5], start=1):
            score.value = value
            score.tick = tick
    assert [entry[1] for entry in best.kept] == [0.9]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_score=0.9000.pt"]
    assert Checkpoint.read(tmp_path / "checkpoint_1_score=0.9000.pt")["score"] == 0.9


# -- 2. two checkpoints in one directory ------------------------------------------------


def test_two_checkpoints_in_one_directory_keep_their_own_files(tmp_path):
    """Defect: "last 2 + best 1" in one folder deleted the best file, and latest() mixed the two series."""
    with State():
        score = Score()
        last = Checkpoint(tmp_path, trigger=score.tick_ref, n_saved=2)
        best = Checkpoint(
            tmp_path, trigger=score.tick_ref, score_ref=score.value_ref, n_saved=1, mode="max", name="best"
        )
        for tick, value in enumerate([0.2, 0.9, 0.4, 0.3, 0.1], start=1):
            score.value = value
            score.tick = tick
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best_2_score=0.9000.pt", "checkpoint_4.pt", "checkpoint_5.pt"]
    assert Checkpoint.read(tmp_path / "best_2_score=0.9000.pt")["score"] == 0.9
    assert Checkpoint.latest(tmp_path) == tmp_path / "checkpoint_5.pt" == Path(last.last_path)
    assert Checkpoint.latest(tmp_path, prefix="best") == tmp_path / "best_2_score=0.9000.pt" == Path(best.last_path)


# -- 3. numpy in the state ----------------------------------------------------------------


def test_numpy_values_in_the_state_round_trip_through_a_checkpoint(tmp_path):
    """Defect: a numpy scalar in the state was saved without complaint, then every file was refused at resume."""
    with State():
        hp = Params(name="hp", lr=np.float64(1e-3), steps=np.int64(7), table=np.arange(3, dtype=np.float32))
        Checkpoint(tmp_path, trigger=hp.lr_ref)
        hp.lr = np.float64(2e-3)
    with State():
        hp = Params(name="hp", lr=0.0, steps=0, table=None)
        Checkpoint(tmp_path, trigger=hp.lr_ref)
        Checkpoint.load(Checkpoint.latest(tmp_path))
        assert hp.lr == 2e-3 and type(hp.lr) is float
        assert hp.steps == 7 and type(hp.steps) is int
        assert torch.equal(hp.table, torch.arange(3, dtype=torch.float32))


class _Opaque:
    pass


def test_a_value_the_safe_loader_refuses_is_refused_at_save_naming_its_path(tmp_path):
    """Defect: objects the safe loader refuses were written; the file was unloadable, found out only at resume."""
    with State():
        hp = Params(name="hp", tick=0, extra={"inner": [1, _Opaque()]})
        checkpoint = Checkpoint(tmp_path, trigger=hp.tick_ref)
        with pytest.raises(CheckpointError, match=r"checkpoint_1\.pt.*params\.hp\.extra\.inner\[1\].*_Opaque"):
            hp.tick = 1
        assert list(tmp_path.iterdir()) == [] and checkpoint.n_saves == 0


# -- 4 and issue 13 item 3: gradient accumulation --------------------------------------------


def _accumulating_trainer(digits, steps: int = 3) -> SupervisedTrainer:
    """7 batches of 32 per epoch (not a multiple of 3), 2 epochs, momentum: any lost gradient shows."""
    x, y = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(3))
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader, n_epochs=2,
                             gradient_accumulation_steps=steps)


def test_accumulation_steps_at_every_epoch_end_as_lightning(digits):
    """Defect (issue 13): the accumulation window spanned the epoch end, so the end-of-epoch state missed gradients.

    The reference is Lightning's rule written by hand: step when (batch_idx + 1) % N == 0 or at the last batch.
    """
    with State():
        trainer = _accumulating_trainer(digits)
        trainer.run()
        trained = [p.detach().clone() for p in trainer.model.module.parameters()]
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = digits
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(3))
    model.train()
    for _ in range(2):
        # islice: like the engine (and ignite), stop after len(loader) batches without asking for one
        # more, which would make the sampler draw another permutation from the loader's generator.
        for index, (xb, yb) in enumerate(itertools.islice(loader, len(loader))):
            if index % 3 == 0:
                optimizer.zero_grad()
            (torch.nn.functional.cross_entropy(model(xb), yb) / 3).backward()
            if (index + 1) % 3 == 0 or index + 1 == len(loader):
                optimizer.step()
    for mine, reference in zip(trained, model.parameters(), strict=True):
        assert torch.equal(mine, reference)


def test_resume_with_gradient_accumulation_is_exact_from_every_position(digits, tmp_path):
    """Defect: a checkpoint inside an accumulation window did not hold the accumulated .grad: the resume drifted."""
    with State():
        trainer = _accumulating_trainer(digits)
        Checkpoint(tmp_path, trigger=trainer.n_iteration_completed_ref, n_saved=None)
        trainer.run()
        reference = [p.detach().clone() for p in trainer.model.module.parameters()]
    files = sorted(tmp_path.glob("checkpoint_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    assert len(files) == 14  # every position of the windows, both epoch ends included
    for path in files[:-1]:
        with State():
            trainer = _accumulating_trainer(digits)
            Checkpoint(tmp_path / "resumed", trigger=trainer.n_iteration_completed_ref, n_saved=1)
            Checkpoint.load(path)
            trainer.run()
            for mine, theirs in zip(trainer.model.module.parameters(), reference, strict=True):
                assert torch.equal(mine, theirs), f"resumed from {path.name}"


# -- 5. Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_then_run_redoes_the_interrupted_batch():
    """Defect: after a KeyboardInterrupt, run() skipped the interrupted batch and filled the epoch from the next
    pass."""
    processed: list[int] = []
    interrupted: list[int] = []

    def process(engine, batch):
        if batch == 2 and not interrupted:
            interrupted.append(batch)
            raise KeyboardInterrupt
        processed.append(batch)
        return batch

    with State():
        engine = Engine("engine", process, data=list(range(5)))
        with pytest.raises(KeyboardInterrupt):
            engine.run()
        assert isinstance(engine.exception, KeyboardInterrupt) and engine.run_in_progress
        engine.run()
    assert processed == [0, 1, 2, 3, 4]
    assert engine.n_epoch_completed == 1 and engine.n_iteration_completed == 5


# -- 6. Accuracy on class ids --------------------------------------------------------------


def test_accuracy_scores_class_id_predictions():
    """Defect: y_pred of y's shape holding class ids was thresholded as probabilities: perfect ids scored 0.5."""
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    with State():
        ids = Engine("ids", lambda e, b: b, data=[(y.clone(), y)])
        accuracy = Accuracy(engine=ids)
        ids.run()
        assert accuracy.value == 1.0
        floats = Engine("floats", lambda e, b: b, data=[(y.float(), y)])
        Accuracy(engine=floats)
        with pytest.raises(ValueError, match=r"floats_accuracy.*class ids other than 0 and 1"):
            floats.run()


# -- 7. train mode ----------------------------------------------------------------------------


def test_the_model_trains_in_train_mode_after_a_callback_switches_it_to_eval(digits):
    """Defect: model.train() was called once per run; a callback calling model.eval() left training in eval mode."""
    x, y = digits

    class Recording(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)
            self.modes: list[bool] = []

        def forward(self, inputs):
            self.modes.append(self.training)
            return self.linear(inputs)

    with State():
        model = Recording()
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                    torch.nn.functional.cross_entropy, [(x[:16], y[:16])] * 4)
        trainer.n_iteration_completed_ref.attach(model.eval)  # e.g. sampling in a callback
        trainer.run()
    assert model.modes == [True] * 4


# -- 8. ignite-style metrics dict --------------------------------------------------------------


def test_an_ignite_style_metrics_dict_names_and_computes_each_metric(digits):
    """Defect: {"accuracy": Precision()} iterated the keys and computed Accuracy; {"nll": Loss(fn)} got a wrong
    error."""
    from ignite.metrics import Loss as IgniteLoss
    from ignite.metrics import Precision

    x, y = digits
    model = _mlp(seed=2)
    with State() as s:
        evaluator = SupervisedEvaluator(model, [(x, y)], name="val",
                                        metrics={"accuracy": Precision(average=True),
                                                 "nll": IgniteLoss(torch.nn.functional.cross_entropy)})
        evaluator.run()
        assert sorted(m.name for m in s.metrics) == ["val_accuracy", "val_nll"]
        with torch.no_grad():
            model.eval()
            y_pred = model(x)
        precision = Precision(average=True)
        precision.update((y_pred, y))
        assert s.val_accuracy.value == pytest.approx(precision.compute())
        assert s.val_accuracy.value != pytest.approx(float((y_pred.argmax(1) == y).float().mean()))
        assert s.val_nll.value == pytest.approx(float(torch.nn.functional.cross_entropy(y_pred, y)))


# -- 9. terminate on the epoch start -----------------------------------------------------------


def test_terminate_or_terminate_epoch_on_the_epoch_start_runs_no_iteration():
    """Defect: terminate() or terminate_epoch() from an n_epoch_started callback was ignored for that epoch."""
    with State():
        stopped = Engine("stopped", lambda e, b: b, data=range(4), n_epochs=3)
        stopped.n_epoch_started_ref.attach(stopped.terminate)
        stopped.run()
        assert (stopped.n_iteration_completed, stopped.n_epoch_completed, stopped.n_run_completed) == (0, 0, 1)
        skipping = Engine("skipping", lambda e, b: b, data=range(4), n_epochs=3)
        skipping.n_epoch_started_ref.attach(lambda epoch: epoch == 2 and skipping.terminate_epoch())
        skipping.run()
        assert (skipping.n_iteration_completed, skipping.n_epoch_completed) == (8, 3)


# -- 10. a failed evaluator --------------------------------------------------------------------


def test_an_evaluator_that_failed_starts_its_next_evaluation_afresh():
    """Defect: an evaluator that failed continued its stale evaluation at the next trigger, mixing two models."""
    seen: list[list[int]] = []
    failures: list[int] = []

    def evaluate(engine, batch):
        if batch == 2 and not failures:
            failures.append(batch)
            raise RuntimeError("a transient failure")
        seen[-1].append(batch)
        return float(batch)

    with State():
        trainer = Engine("trainer", lambda e, b: b, data=range(2), n_epochs=2)
        evaluator = Engine("evaluator", evaluate, data=range(4), run_on=trainer.n_epoch_completed_ref)
        evaluator.n_epoch_started_ref.attach(lambda: seen.append([]))
        mean = AverageOutput(engine=evaluator)
        with pytest.raises(RuntimeError, match="transient"):
            trainer.run()
        trainer.run()  # the retry goes on to epoch 2, whose end triggers the evaluator
    assert seen == [[0, 1], [0, 1, 2, 3]]
    assert mean.count == 4 and mean.value == 1.5
    assert evaluator.n_run_completed == evaluator.n_run_started == 2 and not evaluator.run_in_progress


# -- 11. new data after a failed run -----------------------------------------------------------


def test_new_data_after_a_failed_run_starts_a_new_run_over_it():
    """Defect: run(new_data) after a failed run continued that run on the new data with the old epoch length."""
    processed: list[str] = []

    def process(engine, batch):
        if batch == "a2":
            raise ValueError("bad batch")
        processed.append(batch)

    with State():
        engine = Engine("engine", process, data=["a0", "a1", "a2", "a3", "a4"])
        with pytest.raises(ValueError):
            engine.run()
        engine.run(["b0", "b1", "b2", "b3"])
    assert processed == ["a0", "a1", "b0", "b1", "b2", "b3"]
    assert engine.epoch_length == 4 and engine.n_epoch_completed == 1


# -- 12. loading is all or nothing -------------------------------------------------------------


def _saved(tmp_path: Path) -> Path:
    with State():
        model = torch.nn.Linear(4, 3)
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss,
                                    [(torch.randn(2, 4), torch.randn(2, 3))] * 3)
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref)
        trainer.run()
    return tmp_path / "checkpoint_1.pt"


def _crafted(path: Path, edit) -> Path:
    payload = torch.load(path, weights_only=True)
    edit(payload)
    crafted = path.with_name("checkpoint_99.pt")
    torch.save(payload, crafted)
    return crafted


@pytest.mark.parametrize(
    ("shape", "edit", "message"),
    [
        ((4, 5), None, r"components\.linear\.module\.weight: expected shape \(5, 4\).*found \(3, 4\)"),
        ((4, 3), lambda p: p["state"]["engines"]["trainer"].update(n_iteration_completed=-2),
         r"engines\.trainer\.n_iteration_completed: expected a counter.*found -2"),
        ((4, 3), lambda p: p["rng"].update(torch=torch.zeros(3)), r"rng\.torch: expected a uint8 tensor"),
        ((4, 3), lambda p: p.update(save_number="one"), r"save_number must be a positive int, found 'one'"),
    ],
    ids=["model of another shape", "negative counter", "malformed rng", "malformed save number"],
)
def test_a_checkpoint_that_does_not_fit_restores_nothing(tmp_path, shape, edit, message):
    """Defect: a bad value failed half-way through a restore, leaving counters restored over fresh weights."""
    path = _saved(tmp_path)
    if edit is not None:
        path = _crafted(path, edit)
    with State():
        model = torch.nn.Linear(*shape)
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss,
                                    [(torch.randn(2, shape[0]), torch.randn(2, shape[1]))] * 3)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        with pytest.raises(CheckpointError, match=message) as caught:
            Checkpoint.load(path)
        assert str(path) in str(caught.value)
        assert trainer.n_iteration_completed == 0 and trainer.n_epoch_completed == 0 and not trainer.run_in_progress
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert torch.equal(torch.get_rng_state(), rng)


# -- 13. n_samples from batch_size_fn -------------------------------------------------------------


def test_batch_size_fn_results_are_checked_and_integral_numbers_converted():
    """Defect: the engine stored what batch_size_fn returned (2.5, -1, np.int64, a tensor) in n_samples as is."""
    with State():
        for name, size in [("numpy", np.int64(3)), ("tensor", torch.tensor(3)), ("whole_float", 3.0)]:
            engine = Engine(name, lambda e, b: b, data=[1, 2], batch_size_fn=lambda batch, size=size: size)
            engine.run()
            assert engine.n_samples == 6 and type(engine.n_samples) is int
        for name, size in [("half", 2.5), ("negative", -1)]:
            engine = Engine(name, lambda e, b: b, data=[1, 2], batch_size_fn=lambda batch, size=size: size)
            with pytest.raises(ValueError, match=rf"batch_size_fn of engine '{name}' returned {size}"):
                engine.run()
            assert engine.n_samples == 0


# -- 16. writer threads ---------------------------------------------------------------------------


def _writer_threads() -> int:
    return sum(1 for thread in threading.enumerate() if type(thread).__name__ == "_AsyncWriterThread")


def test_tensorboard_writers_release_their_threads_when_removed_or_collected(tmp_path):
    """Defect: removing a TensorBoard feature left one writer thread per run directory and an atexit hook per writer."""
    baseline, hooks = _writer_threads(), atexit._ncallbacks()
    with State() as s:
        for index in range(3):
            trainer = Engine(f"trainer_{index}", lambda e, b: b * 0.5, data=[1, 2])
            writer = TensorBoard(tmp_path / f"removed_{index}", name=f"tb_{index}")
            ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref, writer=writer)
            trainer.run()
            assert _writer_threads() == baseline + 1
            if index == 2:
                s.remove(writer)  # through the State, not the feature
            else:
                writer.remove()
            assert _writer_threads() == baseline
        trainer = Engine("collected", lambda e, b: b * 0.5, data=[1, 2])
        writer = TensorBoard(tmp_path / "collected", name="tb_collected")
        ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref, writer=writer)
        trainer.run()
        assert _writer_threads() == baseline + 1
        s.clear()
    del s, writer, trainer
    gc.collect()
    assert _writer_threads() == baseline
    assert atexit._ncallbacks() <= hooks + 1  # at most the one hook shared by every writer


def test_tensorboard_writers_close_on_clear_and_at_the_end_of_their_state_block(tmp_path):
    """Defect: `state.clear()` and leaving `with State()` left a writer thread per run directory running
    (while the features stayed referenced). The State's close hook ends them, at once."""
    baseline = _writer_threads()
    kept = []
    for ending in ("clear", "block end"):
        with State() as s:
            trainer = Engine("trainer", lambda e, b: b * 0.5, data=[1, 2])
            writer = TensorBoard(tmp_path / ending.replace(" ", "_"))
            ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
            trainer.run()
            kept.append(writer)  # referenced: no finalizer can do the work
            assert _writer_threads() == baseline + 1
            if ending == "clear":
                s.clear()
                assert _writer_threads() == baseline
        assert _writer_threads() == baseline, ending


# -- disk full --------------------------------------------------------------------------------------


def test_a_full_disk_is_reported_with_its_errno_and_the_file(tmp_path):
    """Defect: a save failing for lack of room raised torch's "unexpected pos" RuntimeError, naming neither."""
    script = textwrap.dedent(
        f"""
        import resource, torch
        from statefire.frame import State, Params
        from statefire.features import Checkpoint, Model

        with State():
            Model(torch.nn.Linear(300, 300))
            hp = Params(name="hp", tick=0)
            Checkpoint({str(tmp_path)!r}, trigger=hp.tick_ref)
            resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # a real write failure past 50 kB
            try:
                hp.tick = 1
            except OSError as error:
                print(error.errno, error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "EFBIG" in result.stdout and "checkpoint_1.pt" in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []  # no temp file left, nothing half-written


def test_a_state_dict_that_does_not_fit_restores_nothing():
    """Defect (item 12, without a checkpoint file): `state.load_state_dict` with a model of another shape
    restored the counters first, then failed on the weights: a later run() resumed from the wrong place."""
    from statefire.features import Model
    from statefire.frame.errors import StateDictError

    with State() as first:
        Model(torch.nn.Linear(3, 2), name="net")
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2, 3])
        trainer.run()
        saved = first.state_dict()
    with State():
        net = Model(torch.nn.Linear(4, 2), name="net")
        before = net.module.weight.detach().clone()
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2, 3])
        with pytest.raises(
            StateDictError, match=r"nothing was restored: components\.net\.module\.weight: expected shape"
        ):
            State.current().load_state_dict(saved)
        assert trainer.n_iteration_completed == 0 and trainer.n_epoch_completed == 0
        assert torch.equal(net.module.weight, before)
