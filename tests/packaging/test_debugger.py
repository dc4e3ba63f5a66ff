"""A real debugger session (debugpy, the debugger of VS Code and Jupyter) shows a feature's values first.

statefire is installed from its wheel into a fresh environment, a script
stops at `breakpoint()` under `python -m debugpy`, and this test is the
editor: it speaks the Debug Adapter Protocol over a socket and asks for the
variables of an engine, as the variables pane does.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sysconfig
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

GROUPS = {"special variables", "function variables", "class variables", "protected variables"}


class DebugAdapter:
    """The editor's end of a Debug Adapter Protocol connection."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.stream = self.socket.makefile("rb")
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self.socket.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def receive(self) -> dict[str, Any]:
        length = 0
        while (line := self.stream.readline().strip()) != b"":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        message: dict[str, Any] = json.loads(self.stream.read(length))
        return message

    def response(self, seq: int) -> dict[str, Any]:
        while True:
            message = self.receive()
            if message["type"] == "response" and message["request_seq"] == seq:
                assert message["success"], message
                return message.get("body", {})
            if message["type"] == "event":
                self.events.append(message)

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.response(self.send(command, **arguments))

    def event(self, name: str) -> dict[str, Any]:
        for index, event in enumerate(self.events):
            if event["event"] == name:
                return self.events.pop(index)
        while True:
            message = self.receive()
            if message["type"] == "event" and message["event"] == name:
                return message

    def variables(self, reference: int) -> list[dict[str, Any]]:
        variables: list[dict[str, Any]] = self.request("variables", variablesReference=reference)["variables"]
        return variables


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def with_dependencies(installed) -> Path:
    """The fresh environment's python; torch and debugpy come from this environment's."""
    purelib = subprocess.run(
        [str(installed), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # A path line (not this environment's .pth files): its editable statefire stays out of sight.
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return installed


def test_the_debuggers_variables_pane_leads_with_a_features_values(with_dependencies, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(
        """
        import statefire.frame
        from statefire.features import Engine


        class Sensor(statefire.frame.Feature):
            reading = statefire.frame.StateObject(0.5)

            @property
            def calibration(self):
                raise RuntimeError("not calibrated")


        with statefire.frame.State():
            trainer = Engine("trainer", lambda engine, batch: 2 * batch, data=[1, 2, 3], n_epochs=2)
            trainer.run()
            sensor = Sensor()
            assert statefire.frame.__file__.startswith(__import__("sys").prefix)  # the wheel's copy
            breakpoint()
        """
    ))
    port = _free_port()
    debuggee = subprocess.Popen(
        [str(with_dependencies), "-Xfrozen_modules=off", "-m", "debugpy", "--listen", f"127.0.0.1:{port}",
         "--wait-for-client", str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        editor = DebugAdapter(port)
        editor.request("initialize", adapterID="statefire-test", clientID="test", pathFormat="path",
                       linesStartAt1=True, columnsStartAt1=True)
        attached = editor.send("attach", justMyCode=False)
        editor.event("initialized")
        editor.request("configurationDone")
        editor.response(attached)
        thread = editor.event("stopped")["body"]["threadId"]
        frame = editor.request("stackTrace", threadId=thread)["stackFrames"][0]["id"]
        scopes = editor.request("scopes", frameId=frame)["scopes"]
        local = next(scope for scope in scopes if scope["name"] == "Locals")
        found = {v["name"]: v for v in editor.variables(local["variablesReference"])}
        rows = editor.variables(found["trainer"]["variablesReference"])
        sensor_rows = editor.variables(found["sensor"]["variablesReference"])
        editor.request("disconnect", terminateDebuggee=True)
    finally:
        try:
            debuggee.wait(timeout=30)
        finally:
            debuggee.kill()
    names = [row["name"] for row in rows if row["name"] not in GROUPS]
    values = {row["name"]: row["value"] for row in rows}
    # the engine's state objects first, in the order its class declares them, resume bookkeeping last of them
    assert names[:8] == ["n_run_started", "n_run_completed", "n_epoch_started", "n_epoch_completed",
                         "n_iteration_started", "n_iteration_completed", "n_samples", "batch"], names
    assert names.index("in_epoch") < names.index("data") < names.index("refs") == len(names) - 1
    assert (values["n_epoch_completed"], values["n_samples"], values["output"]) == ("2", "6", "6")
    assert not any(name.endswith("_ref") for name in names)  # the refs are one entry, not one row each
    assert "n_samples" in values["refs"] and "Ref engines.trainer.n_samples" in values["refs"]
    # evaluating what the pane shows gives the engine's own objects back
    assert next(row for row in rows if row["name"] == "refs")["evaluateName"] == "trainer.refs"
    # any feature class; a property that raises shows its error in its row, the rest of the view stays
    sensor = {row["name"]: row["value"] for row in sensor_rows if row["name"] not in GROUPS}
    assert next(iter(sensor)) == "reading" and sensor["reading"] == "0.5"
    assert "not calibrated" in sensor["calibration"] and list(sensor)[-1] == "refs"
