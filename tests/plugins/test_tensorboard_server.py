"""A real client: the real `tensorboard` server shows the three-engine example's comparison charts.

The example writes a log directory; a TensorBoard server started on a free
port of 127.0.0.1 is asked, over its HTTP API, for the custom-scalars
layout, the scalar series (through the custom-scalars regex route the
dashboard uses, and the plain Scalars route) and the HParams experiment.
The server is always stopped.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "three_engines.py"
ENGINES = ["cv_evaluator", "trainer", "val_evaluator"]
N_TRAIN = int(0.8 * 1797)  # the example's training set
N_EPOCHS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, body: dict | None = None, timeout: float = 10) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(predicate, server: subprocess.Popen, what: str, deadline: float = 60.0):
    """Poll `predicate()` until it returns something truthy, the server dies, or the deadline passes."""
    end = time.monotonic() + deadline
    last_error = None
    while time.monotonic() < end:
        if server.poll() is not None:
            raise AssertionError(f"tensorboard exited with {server.returncode} while waiting for {what}")
        try:
            result = predicate()
            if result:
                return result
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as error:
            last_error = error
        time.sleep(0.5)
    raise AssertionError(f"tensorboard did not provide {what} within {deadline} s (last error: {last_error!r})")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    """The log directory written by examples/three_engines.py, run as a user would."""
    cwd = tmp_path_factory.mktemp("three_engines")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "runs"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return cwd / "runs"


def test_the_example_writes_one_run_per_engine(log_dir):
    assert sorted(p.name for p in log_dir.iterdir() if p.is_dir()) == sorted([*ENGINES, "hparams"])


def test_tensorboard_server_serves_the_comparison_charts(log_dir, tmp_path):
    on_disk = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    on_disk.Reload()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir), "--host", "127.0.0.1",
        "--port", str(port), "--load_fast", "false", "--reload_interval", "1",
    ]  # fmt: skip
    stderr = open(tmp_path / "tensorboard.log", "w+")  # noqa: SIM115  # the server's, closed in the finally below
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    try:
        # The layout: the comparison category first, one Multiline chart per metric type.
        layout = wait_for(
            lambda: get(f"{base}/data/plugin/custom_scalars/layout").get("category"), server, "the layout"
        )
        comparison = layout[0]
        assert comparison["title"] == "engines compared (x: trainer.n_samples)"
        assert [(c["title"], c["multiline"]["tag"]) for c in comparison["chart"]] == [
            ("accuracy", ["^accuracy(/\\d+)?$"]),
            ("loss", ["^loss(/\\d+)?$"]),
        ]
        titles = [c["title"] for c in layout[1:]]
        assert titles == [f"{e} metrics" for e in ("trainer", "cv_evaluator", "val_evaluator")]

        for chart in comparison["chart"]:
            regex = chart["multiline"]["tag"][0]
            for run in ENGINES:
                query = urllib.parse.urlencode({"run": run, "tag": regex})
                answer = wait_for(
                    lambda query=query: get(f"{base}/data/plugin/custom_scalars/scalars?{query}"),
                    server,
                    f"{run} {regex}",
                )
                assert answer["regex_valid"] is True
                answer = answer["tag_to_events"]
                assert list(answer) == [chart["title"]]  # the anchored regex selects one tag per run
                series = answer[chart["title"]]  # [wall_time, step, value] triples
                steps = [point[1] for point in series]
                assert steps == [N_TRAIN * epoch for epoch in range(1, N_EPOCHS + 1)]
                expected = [e.value for e in on_disk.Scalars(run, chart["title"])]
                np.testing.assert_allclose([point[2] for point in series], expected, rtol=1e-6)
                plain_query = urllib.parse.urlencode({"run": run, "tag": chart["title"]})
                plain = get(f"{base}/data/plugin/scalars/scalars?{plain_query}")
                assert [point[1:] for point in plain] == [point[1:] for point in series]
            if chart["title"] == "accuracy":
                assert 0.8 < series[-1][2] <= 1.0  # the validation accuracy of a trained model

        # The HParams dashboard: the example's configuration and final metrics.
        experiment = wait_for(
            lambda: get(f"{base}/data/plugin/hparams/experiment", body={"experimentName": ""}).get("hparamInfos"),
            server, "the hparams experiment",
        )  # fmt: skip
        names = {info["name"] for info in experiment}
        assert {"params.hp.lr", "params.hp.batch_size"} <= names and not any(n.startswith("engines.") for n in names)
    except AssertionError:
        stderr.seek(0)
        print(stderr.read()[-3000:])
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        stderr.close()
    started = (tmp_path / "tensorboard.log").read_text()
    assert re.search(r"TensorBoard [\d.]+ at http://127\.0\.0\.1:" + str(port), started)
