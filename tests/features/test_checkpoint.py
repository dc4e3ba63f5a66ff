"""Checkpoint: what a file holds, atomic writes, retention, latest, safe loading, resume."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Score

from statefire.features import Checkpoint, Engine, ScalarChart, SupervisedTrainer, TensorBoard
from statefire.features import checkpoint as checkpoint_module
from statefire.features.checkpoint import UnsafeCheckpointError
from statefire.frame import State, StateDictError


@pytest.fixture(scope="module")
def digits(digit_tensors) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digit_tensors
    return x[:192], y[:192]


def _trainer(digits, n_epochs: int = 2, seed: int = 0) -> SupervisedTrainer:
    """A tiny MLP on 192 digits, batches of 32 drawn by a seeded generator: 6 iterations per epoch."""
    torch.manual_seed(seed)
    x, y = digits
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader, n_epochs=n_epochs)


def _numbers(directory: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in directory.glob("checkpoint_*.pt"))


def test_a_file_holds_the_state_the_rng_states_and_its_number(digits, tmp_path):
    """The payload is the whole state dict plus python/numpy/torch RNG states, as plain data."""
    with State():
        trainer = _trainer(digits)
        Checkpoint(tmp_path, trigger=trainer.n_iteration_completed_ref(every=4))
        trainer.run()
        payload = Checkpoint.read(Checkpoint.latest(tmp_path))
    assert payload["save_number"] == 3  # iterations 4, 8, 12
    assert set(payload["state"]) >= {"engines", "components", "handlers"}
    assert payload["state"]["engines"]["trainer"]["n_iteration_completed"] == 12
    assert set(payload["state"]["engines"]["trainer"]["data_state"]) == {"epoch_start", "now"}
    assert set(payload["state"]["components"]["sequential"]["module"]) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    assert isinstance(payload["rng"]["numpy"][1], list)  # a plain list, loadable with weights_only
    assert isinstance(payload["rng"]["torch"], torch.Tensor)
    assert payload["state"]["handlers"]["checkpoint"]["n_saves"] == 3  # the feature as it is after the save


def test_keeps_the_last_n_saved(digits, tmp_path):
    with State() as s:
        trainer = _trainer(digits)
        Checkpoint(tmp_path, trigger=trainer.n_iteration_completed_ref(every=2), n_saved=2)
        trainer.run()
        assert s.checkpoint.n_saves == 6
        assert s.checkpoint.last_path == str(tmp_path / "checkpoint_6.pt")
    assert _numbers(tmp_path) == [5, 6]


@pytest.mark.parametrize(("mode", "kept"), [("max", [2, 4]), ("min", [1, 4])])
def test_keeps_the_best_n_saved_by_score(tmp_path, mode, kept):
    """With score_ref, the best n_saved files stay; a save that would not be among them is skipped."""
    with State() as s:
        score = Score()
        checkpoint = Checkpoint(tmp_path, trigger=score.tick_ref, n_saved=2, score_ref=score.value_ref, mode=mode)
        written = []
        for value in [0.5, 0.9, 0.7, 0.95, 0.1]:
            score.value = value
            score.tick += 1
            written.append(checkpoint.n_saves)
    # max: 0.5 #1, 0.9 #2, 0.7 #3 replaces 0.5, 0.95 #4 replaces 0.7, 0.1 is worse than both: skipped
    # min: 0.5 #1, 0.9 #2, 0.7 #3 replaces 0.9, 0.95 is worse than both: skipped, 0.1 #4 replaces 0.7
    assert written == ([1, 2, 3, 4, 4] if mode == "max" else [1, 2, 3, 3, 4])
    assert _numbers(tmp_path) == kept
    assert [e[0] for e in s.checkpoint.kept] == kept


def test_saves_after_every_other_callback_on_its_trigger(tmp_path):
    """Attached at the lowest priority: a callback attached later, at a low priority, runs before the save."""
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref)
        score.tick_ref.attach(lambda n: setattr(score, "value", f"seen {n}"), priority=-(10**9))
        score.tick = 1
    assert Checkpoint.read(Checkpoint.latest(tmp_path))["state"]["params"]["score"]["value"] == "seen 1"


def test_latest_skips_temp_truncated_and_foreign_files(tmp_path):
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref, n_saved=None)
        for _ in range(3):
            score.tick += 1
    good = (tmp_path / "checkpoint_3.pt").read_bytes()
    (tmp_path / "checkpoint_4.pt").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "checkpoint_5.pt.tmp-4242").write_bytes(good)  # a killed save
    (tmp_path / "checkpoint_final.pt").write_bytes(good)
    (tmp_path / "other_9.pt").write_bytes(good)
    assert Checkpoint.latest(tmp_path) == tmp_path / "checkpoint_3.pt"
    assert Checkpoint.latest(tmp_path, prefix="other") == tmp_path / "other_9.pt"
    assert Checkpoint.latest(tmp_path / "missing") is None


def test_stale_temp_files_are_cleaned_when_a_checkpoint_is_created(tmp_path):
    (tmp_path / "checkpoint_2.pt.tmp-999").write_bytes(b"half a file")
    (tmp_path / "notes.txt").write_text("kept")
    with State():
        Checkpoint(tmp_path, trigger=Score().tick_ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_failed_write_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref, n_saved=1)
        score.tick = 1
        before = (tmp_path / "checkpoint_1.pt").read_bytes()

        def broken_save(obj, file, *args, **kwargs):
            file.write(b"PK partial")
            raise OSError("disk full")

        monkeypatch.setattr(torch, "save", broken_save)
        with pytest.raises(OSError, match="disk full"):
            score.tick = 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1.pt"]
    assert (tmp_path / "checkpoint_1.pt").read_bytes() == before


def test_load_restores_silently_with_the_rng_states(tmp_path):
    """No callback fires on load; values and the python/numpy/torch RNG streams come back."""
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref)
        random.seed(1), np.random.seed(1), torch.manual_seed(1)
        score.value = "saved"
        score.tick = 7
        after_save = (random.random(), np.random.rand(), torch.rand(1))
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref)
        fired = []
        score.value_ref.attach(fired.append)
        score.tick_ref.attach(fired.append)
        random.seed(2), np.random.seed(2), torch.manual_seed(2)
        info = Checkpoint.load(Checkpoint.latest(tmp_path))
        assert (score.value, score.tick, fired) == ("saved", 7, [])
        assert info.save_number == 1 and Checkpoint.resumed() is info
        assert info.restored_value(score.tick_ref) == 7 and info.purge_step("params.score.tick") == 8
        again = (random.random(), np.random.rand(), torch.rand(1))
    assert again[:2] == after_save[:2] and torch.equal(again[2], after_save[2])


def test_load_refuses_a_pickled_object_and_runs_nothing(tmp_path):
    canary = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (canary,))

    path = tmp_path / "checkpoint_1.pt"
    torch.save({"format": "statefire-checkpoint", "state": {}, "payload": Exploit()}, path)
    with State(), pytest.raises(UnsafeCheckpointError, match=r"checkpoint_1\.pt.*pickled object.*nothing was executed"):
        Checkpoint.load(path)
    assert not canary.exists()


def test_resume_mid_epoch_in_process_matches_an_uninterrupted_run(digits, tmp_path):
    """Restore the checkpoint of iteration 4 (mid-epoch 1) into a fresh state and finish: same weights."""
    with State():
        reference = _trainer(digits, seed=3)
        Checkpoint(tmp_path, trigger=reference.n_iteration_completed_ref(once=4))
        losses = []
        reference.n_iteration_completed_ref.attach(lambda: losses.append(float(reference.output)))
        reference.run()
        expected = reference.model.module.state_dict()
    with State():
        resumed = _trainer(digits, seed=99)  # different init and order seed: all of it must come from the file
        Checkpoint(tmp_path, trigger=resumed.n_iteration_completed_ref(once=4))
        Checkpoint.load(tmp_path / "checkpoint_1.pt", restore_rng=True)
        assert (resumed.n_iteration_completed, resumed.epoch_iteration) == (4, 4)
        again = []
        resumed.n_iteration_completed_ref.attach(lambda: again.append(float(resumed.output)))
        resumed.run()
        got = resumed.model.module.state_dict()
    assert again == losses[4:]
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_resume_with_mixed_precision_a_schedule_and_a_run_long_average_matches(digits, tmp_path):
    """The scaler, the LR schedule and a run-long running average resume too: same weights, same values."""
    from statefire.features import LRScheduler, RunningAverage

    def build(seed):
        torch.manual_seed(seed)
        x, y = digits
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True,
                                             generator=torch.Generator().manual_seed(seed))
        model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader, n_epochs=3,
                                    amp_mode="amp", scaler=torch.amp.GradScaler("cpu", init_scale=float(seed)))
        RunningAverage(engine=trainer, reset_on="run", name="smoothed")
        LRScheduler(torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5), trigger=trainer.n_epoch_completed_ref)
        Checkpoint(tmp_path, trigger=trainer.n_iteration_completed_ref(once=8))
        return trainer

    with State() as reference:
        trainer = build(seed=3)
        trainer.run()
        expected = (trainer.model.module.state_dict(), reference.smoothed.value, reference.sgd.lr)
    with State() as resumed:
        trainer = build(seed=77)
        Checkpoint.load(tmp_path / "checkpoint_1.pt", restore_rng=True)
        assert (trainer.n_iteration_completed, trainer.scaler.get_scale()) == (8, 3.0)  # the saved scaler
        trainer.run()
        weights, smoothed, lr = trainer.model.module.state_dict(), resumed.smoothed.value, resumed.sgd.lr
    assert all(torch.equal(weights[k], expected[0][k]) for k in weights)
    assert (smoothed, lr) == expected[1:] and lr == 0.1 / 8


def test_resume_purges_tensorboard_events_logged_past_the_checkpoint(digits, tmp_path):
    """A crashed run logged iterations 1-7, its checkpoint is at 4: after the resume the curve is the
    uninterrupted run's, point for point (each output is charted at its own iteration's x, so the purge
    from step 5 removes exactly what is logged again)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def points(log_dir: Path) -> list[tuple[int, float]]:
        accumulator = EventAccumulator(str(log_dir / "trainer")).Reload()
        return [(e.step, e.value) for e in accumulator.Scalars("engines/trainer/output")]

    def charted_trainer(log_dir: Path) -> tuple[SupervisedTrainer, TensorBoard]:
        """The seeded trainer, its output charted against iterations into `log_dir`."""
        trainer = _trainer(digits, seed=5)
        writer = TensorBoard(log_dir)
        ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
        return trainer, writer

    with State():
        trainer, writer = charted_trainer(tmp_path / "reference")
        trainer.run()
        writer.close()
    with State():
        trainer, writer = charted_trainer(tmp_path / "killed")
        Checkpoint(tmp_path / "ckpt", trigger=trainer.n_iteration_completed_ref(every=4))

        def crash(n):
            if n == 7:
                raise KeyboardInterrupt("crash")

        trainer.n_iteration_completed_ref.attach(crash)
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
        writer.close()
    with State():
        trainer, writer = charted_trainer(tmp_path / "killed")
        Checkpoint(tmp_path / "ckpt", trigger=trainer.n_iteration_completed_ref(every=4))
        Checkpoint.load(Checkpoint.latest(tmp_path / "ckpt"))
        assert writer.purge_step == 5
        trainer.run()
        writer.close()
    expected = points(tmp_path / "reference")
    got = points(tmp_path / "killed")
    assert [step for step, _ in expected] == list(range(1, 13))
    assert sorted(got) == expected  # nothing past the checkpoint doubled, every value exact


@pytest.mark.parametrize("step_object", ["batch", "output", "n_iteration_started"])
def test_a_trigger_inside_a_step_is_rejected(tmp_path, step_object):
    with State():
        engine = Engine("trainer", lambda e, b: b, data=[1])
        with pytest.raises(ValueError, match=rf"engines\.trainer\.{step_object}.*inside an engine step"):
            Checkpoint(tmp_path, trigger=getattr(engine, f"{step_object}_ref"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_saved": 0}, r"n_saved of Checkpoint must be a positive int, got 0"),
        ({"mode": "best"}, "mode of Checkpoint must be 'max' or 'min', got 'best'"),
        ({"prefix": "a/b"}, "prefix of Checkpoint must be a plain file-name part, got 'a/b'"),
    ],
)
def test_invalid_arguments_are_named(tmp_path, kwargs, message):
    with State(), pytest.raises(ValueError, match=message):
        Checkpoint(tmp_path, trigger=Score().tick_ref, **kwargs)


def test_a_score_that_is_not_a_number_is_named(tmp_path):
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref, score_ref=score.value_ref, mode="max")
        with pytest.raises(ValueError, match=r"\(params\.score\.value\) must hold a number.*got None"):
            score.tick = 1


def test_strict_load_lists_missing_and_unexpected_keys(tmp_path):
    with State():
        score = Score()
        Checkpoint(tmp_path, trigger=score.tick_ref)
        score.tick = 1
    with State():
        Checkpoint(tmp_path, trigger=Score(name="other").tick_ref)
        with pytest.raises(StateDictError) as error:
            Checkpoint.load(tmp_path / "checkpoint_1.pt")
    assert "params.other.value" in error.value.missing and "params.score" in error.value.unexpected
    assert "checkpoint_1.pt" in "".join(getattr(error.value, "__notes__", []))


def test_global_rng_loader_is_found_for_exact_resume():
    """A DataLoader without generator= draws its order from torch's global RNG: the engine follows that one."""
    from statefire.features.engine import _order_generator

    dataset = torch.utils.data.TensorDataset(torch.zeros(4, 1))
    assert _order_generator(torch.utils.data.DataLoader(dataset, shuffle=True)) is checkpoint_module._TORCH_GLOBAL_RNG
    own = torch.Generator()
    assert _order_generator(torch.utils.data.DataLoader(dataset, shuffle=True, generator=own)) is own
    assert _order_generator([1, 2]) is None
