"""`statefire run`, `statefire runs ...` and `statefire.plugins.main()`, on scripts in a real git repository."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from statefire import frame
from statefire.plugins import Registry, main
from statefire.plugins.cli import main as cli

EXPERIMENT = textwrap.dedent("""
    import sys
    from statefire.frame import Params
    from statefire.features import AverageOutput, Checkpoint, Engine

    hp = Params(name="hp", scale=1.0)
    trainer = Engine("trainer", lambda engine, batch: batch * hp.scale, data=[1.0, 2.0, 3.0], n_epochs=2)
    val = Engine("val_evaluator", lambda engine, batch: batch * hp.scale * 10, data=[1.0],
                 run_on=trainer.n_epoch_completed_ref)
    AverageOutput(engine=trainer, name="train_mean")
    AverageOutput(engine=val, name="val_mean")
    Checkpoint(trigger=trainer.n_epoch_completed_ref)
""")
TRAIN = EXPERIMENT + "trainer.run()\n"
TASK = EXPERIMENT + "from statefire.plugins import main\nmain()\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding the scripts, with runs/ ignored; the test runs in it."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.name", "Tester")
    git(tmp_path, "config", "user.email", "tester@example.com")
    (tmp_path / ".gitignore").write_text("runs/\n*.png\n")
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "task.py").write_text(TASK)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "experiment")
    monkeypatch.chdir(tmp_path)
    frame.state.clear()
    yield tmp_path
    frame.state.clear()


def statefire(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "statefire.plugins.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_run_with_sets_then_list_show_compare_diff_and_checkout(repo, capsys):
    first = statefire("run", "train.py", "--set", "params.hp.scale=2.0", "--set", "engines.trainer.n_epochs=3",
                      cwd=repo)
    assert first.returncode == 0, first.stderr[-3000:]
    original = (repo / "train.py").read_text()
    (repo / "train.py").write_text(original + "# the second version\n")  # an uncommitted edit
    assert cli(["run", "train.py", "--experiment", "sweep", "--set", "params.hp.scale=0.5"]) == 0  # in this process
    frame.state.clear()
    assert "completed" in capsys.readouterr().out
    registry = Registry(repo / "runs")
    b, a = registry.runs()
    assert (a.params["params.hp.scale"], a.params["engines.trainer.n_epochs"], a.status) == (2.0, 3, "completed")
    assert (b.params["params.hp.scale"], b.experiment, b.metrics["val_mean"]) == (0.5, "sweep", 5.0)
    assert a.git["dirty"] is False and b.git["dirty"] is True and a.git["head"] == b.git["head"]
    assert f"run {a.id} completed" in first.stdout

    assert cli(["runs", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[0].split()[:6] == ["id", "experiment", "name", "status", "started", "duration_s"]
    assert listing.index(b.id) < listing.index(a.id) and "val_mean" in listing
    assert cli(["runs", "list", "--where", "hp.scale<1,status=completed"]) == 0
    assert b.id in (out := capsys.readouterr().out) and a.id not in out
    assert cli(["runs", "list", "--sort", "hp.scale", "--limit", "1"]) == 0
    assert b.id in (out := capsys.readouterr().out) and a.id not in out

    assert cli(["runs", "show", a.id[:-4]]) == 0
    shown = capsys.readouterr().out
    assert a.git["snapshot"] in shown and "params.hp.scale" in shown and "val_mean" in shown

    assert cli(["runs", "compare", a.id, "latest", "--plot", "val_mean", "-o", "cmp.png"]) == 0
    compared = capsys.readouterr().out
    first_row = compared.splitlines()[2]
    assert first_row.split()[:2] == ["*", "engines.trainer.epoch_length"] or "params.hp.scale" in compared
    assert compared.index("params.hp.scale") < compared.index("train_mean") or "train_mean" not in compared
    assert (repo / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert cli(["runs", "diff", a.id, b.id]) == 0
    diff = capsys.readouterr().out
    assert "+# the second version" in diff and diff.index("+# the second") < diff.index("params.hp.scale")

    assert cli(["runs", "checkout", a.id, "recovered"]) == 0
    assert (repo / "recovered" / "train.py").read_text() == original
    assert not (repo / "recovered" / "runs").exists()
    assert cli(["runs", "checkout", b.id, "recovered"]) == 1
    assert "is not an empty directory" in capsys.readouterr().err


def test_bad_ids_and_bad_sets_are_clear_errors(repo, capsys):
    assert cli(["run", "train.py", "--set", "params.hp.scale"]) == 2
    assert "--set 'params.hp.scale' is not PATH=VALUE" in capsys.readouterr().err
    assert cli(["runs", "show", "nope"]) == 1
    assert "no run with id 'nope'" in capsys.readouterr().err
    assert cli(["run", "train.py", "--set", "paramz.hp.scale=1", "--set", "scale=2"]) == 1
    err = capsys.readouterr().err
    assert "--set paramz.hp.scale: there is no category 'paramz'; did you mean 'params'?" in err
    assert "--set path 'scale' is not CATEGORY.FEATURE.PARAM" in err


def test_an_unknown_set_path_fails_the_run_after_the_script(repo, capsys):
    assert cli(["run", "train.py", "--set", "params.hp.scael=3"]) == 1
    err = capsys.readouterr().err
    assert "--set params.hp.scael: no feature declared this Param; did you mean 'params.hp.scale'?" in err
    (record,) = Registry(repo / "runs").runs()
    assert record.status == "failed" and "params.hp.scael" in record.error["message"]
    assert record.metrics["train_mean"] == 2.0  # the script ran in full before the error


def test_a_script_that_makes_no_engine_is_a_clear_error(repo, capsys):
    (repo / "plain.py").write_text("print('no engine here')\n")
    assert cli(["run", "plain.py"]) == 1
    captured = capsys.readouterr()
    assert "no engine here" in captured.out and "plain.py made no engine" in captured.err
    assert not (repo / "runs").exists()


def test_main_help_and_bad_arguments(repo, capsys):
    with frame.State() as s:
        exec(EXPERIMENT, {})
        with pytest.raises(SystemExit) as exit:
            main(["--help"], state=s)
        assert exit.value.code == 0
        out = capsys.readouterr().out
        assert "trainer" in out and "runs on engines.trainer.n_epoch_completed" in out and "params.hp.scale" in out
        for argv, message in ((["val_evaluatr"], "no engine 'val_evaluatr' in this script; did you mean 'val_evaluator'?"),
                              (["--set", "params.hp.scal=2"], "no such param; did you mean 'params.hp.scale'?"),
                              (["--set", "hp"], "is not PATH=VALUE")):
            with pytest.raises(SystemExit) as exit:
                main(argv, state=s)
            assert exit.value.code == 2 and message in capsys.readouterr().err
    assert not (repo / "runs").exists()
    with frame.State() as s, pytest.raises(SystemExit):
        main([], state=s)
    assert "made no engine" in capsys.readouterr().err


def test_main_runs_the_default_engines_then_one_engine_on_a_resumed_run(repo):

    train = subprocess.run([sys.executable, "task.py", "--set", "params.hp.scale=3.0"], cwd=repo,
                           capture_output=True, text=True, timeout=60)
    assert train.returncode == 0, train.stderr[-3000:]
    (record,) = Registry(repo / "runs").runs()
    assert record.status == "completed" and record.metrics == {"train_mean": 6.0, "val_mean": 30.0}
    assert len(record.series("val_mean")) == 2

    evaluate = subprocess.run([sys.executable, "task.py", "val_evaluator", "--resume", "latest"], cwd=repo,
                              capture_output=True, text=True, timeout=60)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    (again,) = Registry(repo / "runs").runs()
    assert again.id == record.id and again.status == "completed"
    # only the evaluator ran: one more point at the checkpoint's n_samples, the trainer's series unchanged
    assert [step for step, _, _ in again.series("val_mean")] == [3, 6, 6]
    assert len(again.series("train_mean")) == 2
    assert json.loads((again.dir / "run.json").read_text())["resumed"]


def test_a_script_that_makes_its_own_run_gets_the_commands_root_and_experiment(repo, capsys):
    """`--root` and `--experiment` become the defaults of the script's own Run, which is the run."""
    (repo / "own.py").write_text(TRAIN.replace("trainer.run()", "from statefire.plugins import Run\n"
                                               "run = Run(name='mine')\ntrainer.run()"))
    assert cli(["run", "own.py", "--root", "elsewhere", "--experiment", "mine", "--set", "params.hp.scale=4"]) == 0
    (record,) = Registry(repo / "elsewhere").runs()
    assert (record.name, record.experiment, record.status) == ("mine", "mine", "completed")
    assert record.metrics["train_mean"] == 8.0
    assert not (repo / "runs").exists()
