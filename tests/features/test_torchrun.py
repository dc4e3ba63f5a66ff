"""Distributed training launched by `torchrun --standalone --nproc_per_node=2` (gloo, CPU).

Two launches of `torchrun_script.py` (see its docstring), to start torch as
few times as possible: the first trains until both processes are killed
with SIGKILL mid-epoch; the second resumes that training, runs the stopping
scenarios and the `auto_*` training, runs the killed training again
uninterrupted as the reference, and exits 0.
Every launch has a timeout, so a deadlock fails the test instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("torchrun_script.py")
sys.path.insert(0, str(SCRIPT.parent))
from torchrun_script import BATCH, EPOCHS, EVERY, NAN_AT, mlp  # noqa: E402

sys.path.pop(0)

KILL_AT = 18  # mid-epoch 2 (13 iterations per epoch); the latest checkpoint is that of iteration 16
TIMEOUT = 180


def torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    """One `torchrun --standalone --nproc_per_node=2` launch of the script, with a timeout."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(SCRIPT), str(out), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # torchrun starts its workers in sessions of their own: SIGTERM makes it stop them first.
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        pytest.fail(f"torchrun {' '.join(args)} did not finish in {TIMEOUT} s (a deadlock?): {stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def seen(out: Path, mode: str) -> list[dict]:
    return [json.loads((out / f"{mode}_rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """The digits, prepared once so the processes need no sklearn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = tmp_path_factory.mktemp("torchrun")
    x = torch.tensor(digits.data[:400], dtype=torch.float32) / 16
    torch.save({"x": x, "y": torch.tensor(digits.target[:400])}, out / "data.pt")
    return out


@pytest.fixture(scope="module")
def ranks(out) -> list[dict]:
    """Launch one: a training SIGKILLed mid-epoch (both processes). Launch two: that training
    resumed from its latest checkpoint, the stopping scenarios, the auto_* training, and the
    killed training again, uninterrupted."""
    killed = torchrun(out, "first", "--kill-at", str(KILL_AT))
    assert killed.returncode != 0, killed.stderr[-4000:]
    assert killed.stderr.count("Signal 9 (SIGKILL)") == 2, killed.stderr[-4000:]  # both processes
    assert not (out / "killed" / "final.pt").exists()  # the training never got to its end
    result = torchrun(out, "second")
    assert result.returncode == 0, result.stderr[-4000:]
    return seen(out, "second")


def test_a_nan_on_one_process_stops_both_at_the_same_iteration(ranks):
    """Only the second process sees the NaN; both stop after that iteration and exit 0 (no deadlock)."""
    first, second = (rank["nan"] for rank in ranks)
    assert second["last_loss_finite"] is False and first["last_loss_finite"] is True
    for rank in (first, second):
        assert rank["terminated_at"] == NAN_AT
        assert rank["n_iteration_completed"] == NAN_AT
        assert rank["n_run_completed"] == 1


def test_patience_running_out_on_one_process_stops_both(ranks):
    """The score stalls on the second process only: both terminate at its fifth epoch."""
    first, second = (rank["patience"] for rank in ranks)
    assert second["n_bad"] == 2 and first["n_bad"] == 0  # the first never ran out of patience itself
    assert first["n_epoch_started"] == second["n_epoch_started"] == 5
    assert first["stopped"] and second["stopped"]


def test_auto_helpers_shard_the_data_wrap_the_model_and_register_components(ranks):
    for rank in ranks:
        auto = rank["auto"]
        assert auto["model"] == "DistributedDataParallel"
        assert auto["batch_size"] == BATCH // 2  # the global batch, split over the two processes
        assert auto["sampler"] == "DistributedSampler"
        assert auto["components"] == ["sequential", "sgd"]  # the pipeline reused what auto_* registered
        assert auto["n_iteration_completed"] == 26  # 200 samples per process, 13 batches of 16, 2 epochs


def test_two_processes_equal_one_process_on_the_combined_batches(out, ranks):
    """The same steps in one process, each on the two processes' batches together, give the same weights."""
    from torch.utils.data import DistributedSampler

    data = torch.load(out / "data.pt", weights_only=True)
    x, y = data["x"], data["y"]
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    half = BATCH // 2
    for epoch in range(2):
        orders = []
        for rank in (0, 1):
            sampler = DistributedSampler(range(len(x)), num_replicas=2, rank=rank, shuffle=True, seed=0)
            sampler.set_epoch(epoch)
            orders.append(list(sampler))
        for start in range(0, len(orders[0]), half):
            # Equal shares on both processes, so the mean over both is DDP's averaged gradient.
            index = orders[0][start:start + half] + orders[1][start:start + half]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[index]), y[index]).backward()
            optimizer.step()
    distributed = torch.load(out / "auto.pt", weights_only=True)
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(distributed[name], weight, rtol=1e-5, atol=1e-6)


def test_a_killed_distributed_run_resumes_bit_identical(out, ranks):
    """SIGKILLed mid-epoch, relaunched: each process restored its own RNG states and accumulators."""
    for rank in ranks:
        assert rank["resumed"]["resumed_at"] == KILL_AT // EVERY * EVERY
        assert rank["resumed"]["n_iteration_completed"] == rank["full"]["n_iteration_completed"] == 13 * EPOCHS
        assert rank["full"]["resumed_at"] is None
    full = torch.load(out / "full" / "final.pt", weights_only=True)
    again = torch.load(out / "killed" / "final.pt", weights_only=True)
    assert full.keys() == again.keys()
    for name in full:
        assert torch.equal(full[name], again[name]), name
    # The epoch of the kill averages batches from before and after it, on both processes.
    for rank in ranks:
        assert rank["resumed"]["epoch_means"] == rank["full"]["epoch_means"][1:]


def test_the_checkpoint_holds_every_process_rng_states_and_loads_in_one_process(out, ranks):
    """The main process wrote one file with both processes' states; it loads in a single process too."""
    from statefire.features import Checkpoint, Model
    from statefire.frame import State

    path = Checkpoint.latest(out / "killed" / "ckpt")
    payload = Checkpoint.read(path)
    first, second = payload["processes"]
    assert not torch.equal(first["rng"]["torch"], second["rng"]["torch"])
    assert first["rng"]["numpy"] != second["rng"]["numpy"] and first["rng"]["python"] != second["rng"]["python"]
    assert "components" not in first["state"]  # the weights are saved once
    assert sorted(payload["state"]["components"]["sequential"]["module"]) == sorted(mlp().state_dict())
    with State():
        model = Model(mlp(), name="sequential")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Checkpoint.load(path, strict=False)
        assert any("saved by 2 process(es) and is loaded by 1" in str(w.message) for w in caught)
        for name, weight in model.module.state_dict().items():
            assert torch.equal(weight, payload["state"]["components"]["sequential"]["module"][name])
