"""Distributed training: two processes (gloo, CPU) compute every metric over all the data.

`distributed_script.py` trains a DistributedDataParallel model on two
processes, each with its shard of the data (DistributedSampler), and an
evaluator on each shard of the validation set. The metrics must be the ones
of the whole data, the same on both processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sklearn.metrics import precision_score

SCRIPT = Path(__file__).with_name("distributed_script.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    return seen, torch.load(out / "final.pt", weights_only=True), out


def test_both_processes_see_the_same_metrics_and_weights(ranks):
    (first, second), _, _ = ranks
    metrics = ["val_evaluator_accuracy", "val_evaluator_loss", "val_evaluator_precision", "loss_mean", "loss_smoothed"]
    for name in metrics:
        assert len(first[name]) == (3 if name.startswith("val") or name == "loss_mean" else 24)
        assert first[name] == second[name], name
    assert first["checksum"] == second["checksum"]  # DDP kept the replicas equal
    assert first["epoch_lengths"] == [8, 2]  # 200 training samples per process in batches of 25; 100 to evaluate
    assert first["losses"] != second["losses"]  # each process trained on its own shard


def test_an_epoch_average_is_over_the_batches_of_every_process(ranks):
    (first, second), _, _ = ranks
    for epoch in range(3):
        batches = first["losses"][8 * epoch:8 * epoch + 8] + second["losses"][8 * epoch:8 * epoch + 8]
        assert first["loss_mean"][epoch] == pytest.approx(sum(batches) / len(batches), rel=1e-6)


def test_the_last_evaluation_equals_one_over_the_whole_validation_set(ranks):
    """The final weights evaluated by hand on all 200 samples: the distributed metrics, not one shard's."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from distributed_script import data, model
    finally:
        sys.path.pop(0)
    (first, _), weights, _ = ranks
    network = model()
    network.load_state_dict(weights)
    _, val = data()
    x, y = val.tensors
    with torch.no_grad():
        logits = network(x)
    predicted = logits.argmax(1)
    assert first["val_evaluator_accuracy"][-1] == pytest.approx((predicted == y).float().mean().item())
    expected_loss = torch.nn.functional.cross_entropy(logits, y).item()
    assert first["val_evaluator_loss"][-1] == pytest.approx(expected_loss, rel=1e-5)
    assert first["val_evaluator_precision"][-1] == pytest.approx(
        precision_score(y, predicted, average="macro", zero_division=0), rel=1e-6
    )
    # One process's shard alone (every other sample) would not give that.
    shards = [(predicted[rank::2] == y[rank::2]).float().mean().item() for rank in (0, 1)]
    assert any(shard != pytest.approx(first["val_evaluator_accuracy"][-1]) for shard in shards)


def test_only_the_first_process_writes_event_files_and_checkpoints(ranks):
    """Both processes made a writer, charts and a checkpoint: one set of files, the curves not doubled."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from statefire.features import Checkpoint

    (first, second), _, out = ranks
    assert first["n_saves"] == second["n_saves"] == 3  # both count; one writes
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint_2.pt", "checkpoint_3.pt"]
    assert Checkpoint.latest(out / "checkpoints").name == "checkpoint_3.pt"
    run = out / "runs" / "val_evaluator"
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    accumulator = EventAccumulator(str(run))
    accumulator.Reload()
    accuracy = accumulator.Scalars("accuracy")
    assert [e.step for e in accuracy] == [200, 400, 600]  # the trainer's n_samples counts this process's samples
    assert [e.value for e in accuracy] == pytest.approx(first["val_evaluator_accuracy"])
