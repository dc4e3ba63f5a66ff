"""What an ignite user meets: notebooks, ignite habits, the best model, the state view, the
`statefire` command, retry and file integrity (issue "What an ignite user meets")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch

from statefire import frame
from statefire.features import (
    Checkpoint,
    CheckpointError,
    Engine,
    SupervisedEvaluator,
    SupervisedTrainer,
)
from statefire.frame import Feature, NameConflictError, Params, State, StateObject
from statefire.plugins.cli import main


@pytest.fixture(scope="module")
def digits(digit_tensors) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digit_tensors
    return x[:320], y[:320]


def _batches(digits, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = digits
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


# -- notebooks ---------------------------------------------------------------------------


def test_a_rerun_cell_is_told_how_to_start_over():
    with State():
        Engine("trainer", lambda e, b: b, data=[1])
        with pytest.raises(NameConflictError) as error:
            Engine("trainer", lambda e, b: b, data=[1])
    message = str(error.value)
    assert "another name=" in message
    assert "state.remove('trainer')" in message and "state.clear()" in message and "with State():" in message


class _Experiment(Feature):
    """A feature building others in its constructor, then failing (a half-built cell)."""

    category = "handlers"

    def __init__(self, fail: bool) -> None:
        super().__init__(name="experiment")
        self.hp = Params(name="hp", lr=0.1)
        self.engine = Engine("inner", lambda e, b: b, data=[1])
        if fail:
            raise ValueError("a typo in the cell")


def test_a_failed_constructor_leaves_nothing_registered():
    with State() as s:
        before = Params(name="kept", x=1)
        added = []
        s.engines.added_ref.attach(lambda f: added.append(f.name))
        removed = []
        s.engines.removed_ref.attach(lambda f: removed.append(f.name))
        with pytest.raises(ValueError, match="a typo"):
            _Experiment(fail=True)
        assert [f.name for f in s.features] == ["kept"]  # the half-built feature and what it made are gone
        assert added == removed == ["inner"]  # the announced inner engine was removed with an event
        experiment = _Experiment(fail=False)  # the fixed cell, run again, builds under the same names
        assert s.experiment is experiment and s.inner.run().n_iteration_completed == 1
        assert s.kept is before


def test_state_clear_after_a_half_built_cell_lets_the_cell_run_again(digits):
    """A cell that failed on its last line: state.clear() and the whole cell runs again unchanged."""

    def cell(fail: bool) -> SupervisedTrainer:
        model = _mlp()
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                    torch.nn.functional.cross_entropy, _batches(digits))
        SupervisedEvaluator(model, _batches(digits), metrics=["accuracy"], run_on=trainer.n_epoch_completed_ref)
        if fail:
            raise RuntimeError("the last line had a bug")
        return trainer

    with State() as s:
        with pytest.raises(RuntimeError):
            cell(fail=True)
        with pytest.raises(NameConflictError, match=r"state\.clear\(\)"):
            cell(fail=False)
        s.clear()
        trainer = cell(fail=False).run()
        assert trainer.n_iteration_completed == 10 and 0 < s.evaluator_accuracy.value <= 1


# -- SupervisedTrainer(run_on=) --------------------------------------------------------------


def test_a_second_models_trainer_follows_the_first(digits):
    with State():
        first, second = _mlp(0), _mlp(1)
        trainer = SupervisedTrainer(first, torch.optim.SGD(first.parameters(), lr=0.1),
                                    torch.nn.functional.cross_entropy, _batches(digits), n_epochs=3)
        follower = SupervisedTrainer(second, torch.optim.SGD(second.parameters(), lr=0.1),
                                     torch.nn.functional.cross_entropy, _batches(digits)[:2], name="second",
                                     run_on=trainer.n_epoch_completed_ref)
        before = [p.detach().clone() for p in second.parameters()]
        trainer.run()
        assert follower.run_on.path == "engines.trainer.n_epoch_completed"
        assert follower.n_run_completed == 3 and follower.n_iteration_completed == 6
        assert any(not torch.equal(a, b) for a, b in zip(before, second.parameters(), strict=True))


# -- ignite habits -----------------------------------------------------------------------------


def test_run_max_epochs_suggests_n_epochs():
    with State():
        engine = Engine("trainer", lambda e, b: b, data=[1, 2])
        with pytest.raises(TypeError, match=r"run\(n_epochs=3\)"):
            engine.run(max_epochs=3)
        assert engine.n_run_started == 0  # refused before anything ran


def test_an_ignite_style_callback_gets_a_note_saying_what_it_receives():
    with State():
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2])

        def log_epoch(engine):
            print(engine.state.epoch)

        trainer.n_epoch_completed_ref.attach(log_epoch)
        with pytest.raises(AttributeError, match="'int' object has no attribute 'state'") as error:
            trainer.run()
    notes = "\n".join(getattr(error.value, "__notes__", []))
    assert "log_epoch(engine) is attached to engines.trainer.n_epoch_completed" in notes
    assert "new value (int 1), not with the engine" in notes
    assert notes.count("attached to") == 1  # one note, not one per dispatch it passed


def test_other_attribute_errors_get_no_engine_note():
    with State():
        trainer = Engine("trainer", lambda e, b: b, data=[1])

        def log(value):
            return value.state

        trainer.n_epoch_completed_ref.attach(log)
        with pytest.raises(AttributeError) as error:
            trainer.run()
    assert not any("not with the engine" in n for n in getattr(error.value, "__notes__", []))


# -- the best model --------------------------------------------------------------------------------


def test_best_model_files_carry_the_score_and_load_weights_for_inference(digits, tmp_path):
    with State() as s:
        model = _mlp()
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9),
                                    torch.nn.functional.cross_entropy, _batches(digits), n_epochs=4)
        SupervisedEvaluator(model, _batches(digits), metrics=["accuracy"],
                            run_on=trainer.n_epoch_completed_ref)
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref,
                   score_ref=s.evaluator_accuracy.value_ref, n_saved=2, name="best")
        scores = []
        s.evaluator_accuracy.value_ref.attach(scores.append)
        trainer.run()
    names = sorted(p.name for p in tmp_path.iterdir())
    kept = sorted(sorted(range(1, 5), key=lambda i: scores[i - 1])[-2:])
    assert names == sorted(f"best_{n}_score={scores[n - 1]:.4f}.pt" for n in kept)  # pruned to the best two
    latest = Checkpoint.latest(tmp_path, prefix="best")
    assert latest.name.startswith(f"best_{kept[-1]}_score=")
    assert Checkpoint.read(latest)["score"] == scores[kept[-1] - 1]

    top = max(kept, key=lambda n: scores[n - 1])
    path = next(tmp_path.glob(f"best_{top}_*.pt"))
    fresh = Checkpoint.load_weights(path, _mlp(seed=5)).eval()
    x, y = digits
    with torch.no_grad():
        accuracy = (fresh(x).argmax(1) == y).float().mean().item()
    assert accuracy == pytest.approx(scores[top - 1])  # the weights of the epoch that scored it
    with pytest.raises(CheckpointError, match="none of them fits"):
        Checkpoint.load_weights(path, torch.nn.Linear(3, 1))
    with pytest.raises(CheckpointError, match="holds no model 'net'"):
        Checkpoint.load_weights(path, _mlp(), name="net")


# -- the state as a person sees it ------------------------------------------------------------------


def test_the_tree_hides_bookkeeping_and_shows_models_and_tuples():
    with State() as s:
        model = torch.nn.Linear(4, 2)
        SupervisedTrainer(model, torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99)),
                          torch.nn.functional.mse_loss, [(torch.randn(2, 4), torch.randn(2, 2))]).run()
        text = s.tree()
        saved = s.state_dict()["engines"]["trainer"]
        html = s._repr_html_()
        engine_repr = repr(s.trainer)
    for hidden in ("epoch_iteration", "run_first_epoch", "in_epoch"):
        assert hidden not in text and hidden not in html and hidden not in engine_repr
        assert hidden in saved  # still saved and restored
    assert "n_iteration_completed=1" in text
    assert "linear (Model)" in text and "n_parameters=10" in text
    assert "betas=(0.8, 0.99)" in text


def test_a_hidden_state_object_is_still_an_object():
    class Loop(Feature):
        category = "engines"
        position = StateObject(0, hidden=True)
        loss = StateObject(1.5)

    with State() as s:
        loop = Loop()
        seen = []
        loop.position_ref.attach(seen.append)
        loop.position = 3
        assert seen == [3] and loop.values() == {"position": 3, "loss": 1.5}
        assert loop.shown_values() == {"loss": 1.5} and "position" not in s.tree()


# -- the statefire command --------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from statefire.features import Engine

    Path("ran.txt").write_text("yes")
    trainer = Engine("trainer", lambda e, b: b, data=[1.0, 2.0], n_epochs=2)
    trainer.run()
    if "--exit-message" in sys.argv:
        sys.exit("stopped: no data for fold 3")
    if "--exit-code" in sys.argv:
        sys.exit(3)
    if "--forever" in sys.argv:
        forever = Engine("forever", lambda e, b: time.sleep(0.01), data=None, epoch_length=10**9)
        forever.n_iteration_completed_ref.attach(lambda n: print("running", flush=True), once=1)
        forever.run()
    """
)


@pytest.fixture
def script(write_script):
    return write_script(SCRIPT)


def test_an_unwritable_output_is_found_before_running(script, tmp_path, capsys):
    assert main(["trace", str(script), "-o", str(tmp_path / "missing" / "trace.json")]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err
    (tmp_path / "flow.png").mkdir()
    assert main(["graph", str(script), "-o", str(tmp_path / "flow.png")]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert not (tmp_path / "ran.txt").exists()  # the script never ran


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--max-events", "0", "must be at least 1, got 0"),
    ("--top", "-3", "must be at least 0, got -3"),
    ("--top", "many", "expected a whole number, got 'many'"),
])
def test_counted_options_are_usage_errors(script, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit:
        main(["trace", str(script), option, value])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}" in error and message in error


def test_sys_exit_message_is_printed_and_its_status_kept(script, tmp_path, capsys):
    assert main(["trace", str(script), "-o", "t.json", "--", "--exit-message"]) == 1
    assert "stopped: no data for fold 3" in capsys.readouterr().err
    assert (tmp_path / "t.json").exists()
    frame.state.clear()
    assert main(["trace", str(script), "-o", "t2.json", "--", "--exit-code"]) == 3


def test_ctrl_c_writes_the_trace_of_what_ran(script, tmp_path):
    command = [sys.executable, "-m", "statefire.plugins.cli", "trace", str(script), "-o", "trace.json",
               "--", "--forever"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        line = ""
        while "running" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert "running" in line
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted (Ctrl-C)" in err and "wrote trace.json" in out
    assert (tmp_path / "trace.json").stat().st_size > 0


# -- retry and integrity -------------------------------------------------------------------------


def _stepped_trainer(digits, **kwargs):
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    steps = []
    optimizer.register_step_post_hook(lambda opt, args, kw: steps.append(1))
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, _batches(digits), n_epochs=2,
                                **kwargs)
    return trainer, model, steps


def test_a_retry_after_an_output_callback_failed_never_steps_twice(digits):
    with State():
        trainer, reference, _ = _stepped_trainer(digits)
        trainer.run()
    with State():
        trainer, model, steps = _stepped_trainer(digits)
        failures = {"left": 1}

        def flaky_chart(loss):
            if trainer.n_iteration_started == 7 and failures["left"]:
                failures["left"] -= 1
                raise OSError("disk full while charting")

        trainer.output_ref.attach(flaky_chart)
        completed = []
        trainer.n_iteration_completed_ref.attach(completed.append)
        with pytest.raises(OSError):
            trainer.run()
        assert len(steps) == 7 and trainer.n_iteration_completed == 6
        trainer.run()  # the retry
        assert len(steps) == 20 == trainer.n_iteration_completed == trainer.n_iteration_started
        assert completed == list(range(1, 21))  # iteration 7 completed once, in order
        assert trainer.n_samples == 2 * 320
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)  # the same training as a run without the failure


def test_a_retry_after_process_failed_starts_that_iteration_again(digits):
    with State():
        failures = {"left": 1}

        def loss(y_pred, y):
            if failures["left"] and trainer.n_iteration_started == 4:
                failures["left"] -= 1
                raise RuntimeError("out of memory")
            return torch.nn.functional.cross_entropy(y_pred, y)

        model = _mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        trainer = SupervisedTrainer(model, optimizer, loss, _batches(digits))
        started = []
        trainer.n_iteration_started_ref.attach(started.append)
        with pytest.raises(RuntimeError):
            trainer.run()
        trainer.run()
        assert trainer.n_iteration_started == trainer.n_iteration_completed == 10
        assert started == [1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10]  # iteration 4 started again, with its number


def test_an_error_while_hold_flushes_does_not_drop_the_other_events():
    class Pair(Feature):
        category = "params"
        a = StateObject(0)
        b = StateObject(0)

    with State() as s:
        pair = Pair()
        seen = []

        def broken(value):
            raise ValueError("broken callback")

        pair.a_ref.attach(broken)
        pair.b_ref.attach(seen.append)
        with pytest.raises(ValueError, match="broken callback") as error, s.hold():
            pair.a = 1
            pair.b = 2
        assert seen == [2]
    assert any("callbacks failed on: params.pair.a" in n for n in error.value.__notes__)


def _flip_a_tensor_byte(path: Path) -> None:
    """Change one byte in the middle of the largest tensor storage of a torch zip file."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as file:
        file.seek(info.header_offset + 26)
        name_length, extra_length = int.from_bytes(file.read(2), "little"), int.from_bytes(file.read(2), "little")
        file.seek(info.header_offset + 30 + name_length + extra_length + info.file_size // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x10]))


def test_a_bit_flip_inside_a_tensor_is_a_checkpoint_error(digits, tmp_path):
    with State():
        trainer, _, _ = _stepped_trainer(digits)
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref)
        trainer.run()
    newest = tmp_path / "checkpoint_2.pt"
    _flip_a_tensor_byte(newest)
    torch.load(newest, weights_only=True)  # torch itself loads it silently
    with pytest.raises(CheckpointError, match=r"damaged: entry .* does not match its stored CRC") as error:
        Checkpoint.latest(tmp_path)
    assert "checkpoint_1.pt" in str(error.value)  # the file to use instead
    with State():
        trainer, _, _ = _stepped_trainer(digits)
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref)
        with pytest.raises(CheckpointError, match="nothing was loaded"):
            Checkpoint.load(newest)
        Checkpoint.load(tmp_path / "checkpoint_1.pt")  # the intact one loads


def test_migration_guide_has_the_new_rows():
    guide = (Path(__file__).parents[1] / "docs" / "migrating-from-ignite.md").read_text()
    for idiom in ("max_epochs", "def f(engine)", "load_weights", "run_on=", "state.clear()"):
        assert idiom in guide, idiom



def test_a_retry_after_output_transform_failed_never_steps_twice(digits):
    """The step ran, then `output_transform` raised: the retry gives the output without learning again."""
    with State():
        trainer, reference, _ = _stepped_trainer(digits)
        trainer.run()
    with State():
        failures = {"left": 1}

        def output_transform(x, y, y_pred, loss):
            if failures["left"] and trainer.n_iteration_started == 5:
                failures["left"] -= 1
                raise ValueError("a bad output_transform")
            return loss.item()

        trainer, model, steps = _stepped_trainer(digits, output_transform=output_transform)
        with pytest.raises(ValueError):
            trainer.run()
        assert len(steps) == 5 and trainer.n_iteration_completed == 4
        trainer.run()
        assert len(steps) == 20 == trainer.n_iteration_started == trainer.n_iteration_completed
        assert isinstance(trainer.output, float)
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)
