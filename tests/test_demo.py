"""`make demo` (examples/demo.py): charts TensorBoard loads, a graph picture, and directions to both.

The demo runs as a user runs it, in a fresh process and an empty directory;
its event files are read back with TensorBoard's own reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata

ROOT = Path(__file__).resolve().parents[1]
EVALUATORS = ("train_evaluator", "val_evaluator")
N_EPOCHS = 10
N_TRAIN = 1437  # 80% of the 1797 digits


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    cwd = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "out"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return cwd / "out", result.stdout


def test_one_curve_per_engine_per_metric(demo: tuple[Path, str]) -> None:
    """Each evaluator's run directory holds an `accuracy` and a `loss` curve, one point per epoch, x = samples."""
    out, _ = demo
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert runs == list(EVALUATORS)
    for engine in EVALUATORS:
        accumulator = EventAccumulator(str(out / engine))
        accumulator.Reload()
        assert sorted(accumulator.Tags()["scalars"]) == ["accuracy", "loss"], engine
        for tag in ("accuracy", "loss"):
            events = accumulator.Scalars(tag)
            assert [e.step for e in events] == [N_TRAIN * epoch for epoch in range(1, N_EPOCHS + 1)], (engine, tag)
        accuracy = [e.value for e in accumulator.Scalars("accuracy")]
        loss = [e.value for e in accumulator.Scalars("loss")]
        assert accuracy[-1] > 0.93 and accuracy[-1] > accuracy[0], (engine, accuracy)
        assert loss[-1] < loss[0], (engine, loss)


def test_custom_scalars_layout_compares_the_engines(demo: tuple[Path, str]) -> None:
    """The log directory's layout has one Multiline chart per metric type, matching both engines' curves."""
    out, _ = demo
    accumulator = EventAccumulator(str(out))
    accumulator.Reload()
    layout = layout_pb2.Layout()
    layout.ParseFromString(accumulator.Tensors(metadata.CONFIG_SUMMARY_TAG)[-1].tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}
    assert charts == {"accuracy": ["^accuracy(/\\d+)?$"], "loss": ["^loss(/\\d+)?$"]}


def test_graph_picture_and_directions(demo: tuple[Path, str]) -> None:
    """The data-flow picture is a PNG; the last lines name every artifact and the command to see the charts."""
    out, stdout = demo
    picture = out / "flow.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 20_000
    tail = "\n".join(stdout.splitlines()[-7:])
    assert f"{Path('out') / 'flow.png'}" in tail
    assert "tensorboard --logdir out --host 127.0.0.1" in tail
    assert "make tensorboard" in tail


def test_the_run_is_recorded(demo: tuple[Path, str]) -> None:
    """The demo records its run: run.json completed with the final metrics, in the registry, named in the tail."""
    import json

    from statefire.plugins import Registry

    out, stdout = demo
    (record,) = Registry(out.parent / "runs").runs(experiment="quickstart")
    assert record.status == "completed" and record.name == "demo"
    assert record.metrics["val_evaluator_accuracy"] > 0.93
    run_json = json.loads((Path(record.dir) / "run.json").read_text())
    assert run_json["status"] == "completed" and run_json["config"]["engines.trainer.n_epochs"] == N_EPOCHS
    tail = "\n".join(stdout.splitlines()[-7:])
    assert "run.json" in tail and f"statefire runs show {record.id[:15]}" in tail
