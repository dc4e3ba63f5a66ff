"""`Component(obj, attrs)`: attributes of any object as state objects.

Reads are live, sets write the object and fire; the values are config,
are saved and restored (with the object's own state dict), and work with
refs, filters, run_on, charts, the data-flow graph, describe and an exact
resume after a real SIGKILL.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from statefire.features import Component, Engine, Model, ScalarChart, TensorBoard
from statefire.frame import NameConflictError, State, UnknownNameError
from statefire.plugins import DataFlowGraph, describe

SCRIPT = Path(__file__).with_name("curriculum_script.py")


class Augment:
    """An outside object with a value, a nested config, a list of modules, a property and a method."""

    def __init__(self) -> None:
        self.strength = 0.0
        self.config = {"level": 1, "names": ["a", "b"]}
        self.layers = [torch.nn.Dropout(0.1)]
        self.fixed = (1, 2)
        self._scale = 1.0

    @property
    def doubled(self) -> float:
        return 2 * self.strength

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        if value <= 0:
            raise AttributeError(f"scale must be positive, got {value}")
        self._scale = value

    def apply(self, x: float) -> float:
        return x * self.strength


class EMA:
    """An object with its own state_dict/load_state_dict, like torch's."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self.shadow = torch.zeros(3)
        self.n_updates = 0

    def update(self, x: torch.Tensor) -> None:
        self.shadow = self.decay * self.shadow + (1 - self.decay) * x
        self.n_updates += 1

    def state_dict(self) -> dict:
        return {"shadow": self.shadow.clone(), "n_updates": self.n_updates}

    def load_state_dict(self, state_dict: dict) -> None:
        self.shadow = state_dict["shadow"].clone()
        self.n_updates = state_dict["n_updates"]


def _network() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 2))


# -- reading and setting ---------------------------------------------------------


def test_set_writes_the_attribute_and_fires():
    """A set through the component, its ref or the state writes the object's attribute, then fires."""
    net, loss = _network(), torch.nn.CrossEntropyLoss()
    with State() as s:
        layers = Component(net, {"dropout_p": "1.p"}, name="net")
        smoothing = Component(loss, {"smoothing": "label_smoothing"})
        seen = []
        layers.dropout_p_ref.attach(lambda p: seen.append(("p", p, net[1].p)))
        smoothing.smoothing_ref.attach(lambda v: seen.append(("smoothing", v, loss.label_smoothing)))
        layers.dropout_p = 0.5
        s.net.dropout_p_ref.set(0.3)
        s.cross_entropy_loss.smoothing = 0.1
    assert net[1].p == 0.3 and loss.label_smoothing == 0.1
    # each callback saw the object already changed
    assert seen == [("p", 0.5, 0.5), ("p", 0.3, 0.3), ("smoothing", 0.1, 0.1)]


def test_reads_are_live():
    """A write made on the object itself is seen by every read: attribute, ref, values, state dict, repr."""
    net = _network()
    with State() as s:
        component = Component(net, {"dropout_p": "1.p"}, name="net")
        net[1].p = 0.7
        assert component.dropout_p == 0.7
        net[1].p = 0.6
        assert component.dropout_p_ref.value == 0.6
        net[1].p = 0.5
        assert component.values() == {"dropout_p": 0.5}
        net[1].p = 0.4
        assert s.state_dict()["components"]["net"]["dropout_p"] == 0.4
        net[1].p = 0.3
        assert "dropout_p=0.3" in repr(component) and "dropout_p=0.3" in s.tree()


def test_list_of_paths_names_each_by_its_last_part():
    """A list names each state object after its path's last part; paths go through lists and dicts."""
    augment = Augment()
    with State() as s:
        component = Component(augment, ["strength", "config.level", "layers.0.p"])
        assert component.name == "augment" and s.augment is component
        assert component.paths == {"strength": "strength", "level": "config.level", "p": "layers.0.p"}
        assert component.values() == {"strength": 0.0, "level": 1, "p": 0.1}
        with pytest.raises(NameConflictError, match=r"name '1' of path 'config.names.1' is not a Python identifier"):
            Component(augment, ["config.names.1"], name="names")


def test_paths_through_items():
    """The last part may be a list index or a dict key; a set writes the item."""
    augment = Augment()
    with State():
        component = Component(augment, {"level": "config.level", "p": "layers.0.p", "second": "config.names.1"})
        assert component.values() == {"level": 1, "p": 0.1, "second": "b"}
        component.level = 3
        component.p = 0.25
        component.second = "z"
        augment.config["level"] = 4  # an outside write to the item is seen too
        assert component.level == 4
    assert augment.config == {"level": 4, "names": ["a", "z"]}
    assert augment.layers[0].p == 0.25


def test_default_name_is_the_class_in_snake_case():
    """The default name is the object's class in snake_case; name= overrides it."""
    with State() as s:
        Component(torch.nn.CrossEntropyLoss(), ["label_smoothing"])
        Component(torch.nn.CrossEntropyLoss(), ["label_smoothing"], name="other_loss")
        assert [c.name for c in s.components] == ["cross_entropy_loss", "other_loss"]
        with pytest.raises(NameConflictError, match="already exists .* another name="):
            Component(torch.nn.CrossEntropyLoss(), ["label_smoothing"])


# -- config, state dict ---------------------------------------------------------------


def test_values_are_config_and_can_be_set_by_path():
    """Each attribute is a Param, in `state.config()` as components.<name>.<attr>; setting that
    path as soon as the feature exists (what `statefire run --set` does) changes the object."""
    net, loss = _network(), torch.nn.CrossEntropyLoss()
    overrides = {"components.net.dropout_p": 0.35, "components.loss.smoothing": 0.05}
    with State() as s:

        def apply_overrides(feature):
            for path, value in overrides.items():
                category, name, attr = path.split(".")
                if feature.category == category and feature.name == name:
                    setattr(feature, attr, value)

        s.components.added_ref.attach(apply_overrides)
        Component(net, {"dropout_p": "1.p"}, name="net")
        Component(loss, {"smoothing": "label_smoothing"}, name="loss")
        assert s.config() == {"components.net.dropout_p": 0.35, "components.loss.smoothing": 0.05}
    assert net[1].p == 0.35 and loss.label_smoothing == 0.05


def test_state_dict_saves_values_and_the_objects_own_state():
    """Values and the object's own state dict (under `obj`) are saved; a fresh State restores both
    into new objects silently (no callback fires)."""
    ema = EMA(decay=0.9)
    with State() as s:
        Component(ema, ["decay"])
        ema.update(torch.ones(3))
        s.ema.decay = 0.99
        saved = s.state_dict()
    assert sorted(saved["components"]["ema"]) == ["decay", "obj"]
    assert saved["components"]["ema"]["obj"]["n_updates"] == 1

    fresh = EMA(decay=0.5)
    with State() as s:
        component = Component(fresh, ["decay"])
        fired = []
        component.decay_ref.attach(fired.append)
        s.load_state_dict(saved)
        assert fired == []
        assert component.decay == 0.99
    assert fresh.decay == 0.99 and fresh.n_updates == 1
    assert torch.equal(fresh.shadow, torch.full((3,), 0.1))


def test_a_model_wrapped_once_is_saved_once():
    """A component of a module that a Model in the State wraps does not save the weights again."""
    net = _network()
    with State() as s:
        Component(net, {"dropout_p": "1.p"}, name="net")
        assert sorted(s.state_dict()["components"]["net"]) == ["dropout_p", "obj"]
        assert sorted(s.state_dict()["components"]["net"]["obj"]) == sorted(net.state_dict())
        Model(net)
        assert sorted(s.state_dict()["components"]["net"]) == ["dropout_p"]
        assert sorted(s.state_dict()["components"]["sequential"]["module"]) == sorted(net.state_dict())


def test_strict_load_names_missing_values():
    """A state dict without a component's value is refused, naming the path."""
    with State() as s:
        Component(Augment(), ["strength", "config.level"])
        saved = s.state_dict()
        del saved["components"]["augment"]["level"]
        with pytest.raises(KeyError, match="components.augment.level"):
            s.load_state_dict(saved)


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "attrs, error, words",
    [
        ({"p": "1.pp"}, UnknownNameError, ["'1.pp'", "fails at 'pp'", "'1' (Dropout)", "did you mean 'p'"]),
        ({"p": "3.p"}, UnknownNameError, ["'3.p'", "fails at '3'", "Sequential", "it has: 0, 1, 2"]),
        ({"w": "0.wieght"}, UnknownNameError, ["fails at 'wieght'", "did you mean 'weight'"]),
        ({"f": "forward"}, TypeError, ["'forward'", "lands on a method", "Sequential.forward"]),
        ({"f": "0.forward.x"}, TypeError, ["goes through a method", "'forward'"]),
        ({"m": "1"}, TypeError, ["lands on a module (Dropout)", "'1.p'", "Model"]),
        ("1.p", TypeError, ["dict {name: path} or a list of paths", "write ['1.p']"]),
        (3, TypeError, ["dict {name: path} or a list of paths", "got int: 3"]),
        ({"p": 1}, TypeError, ["path must be a str", "got int: 1"]),
        ({1: "1.p"}, TypeError, ["names in attrs must be str", "1"]),
        ({"p": "1..p"}, ValueError, ["'1..p'", "empty part"]),
        (["0.weight", "2.weight"], NameConflictError, ["'0.weight', '2.weight'", "all end in 'weight'", "dict"]),
        ({"name": "1.p"}, NameConflictError, ["'name'", "attribute of Component"]),
        ({"p_ref": "1.p"}, NameConflictError, ["'p_ref'", "_ref"]),
        ({"1p": "1.p"}, NameConflictError, ["'1p'", "not a Python identifier"]),
        (["1"], NameConflictError, ["not a Python identifier", "in a dict"]),
    ],
)
def test_bad_attrs_are_clear_errors_at_construction(attrs, error, words):
    """Every wrong path or attrs value fails when the component is made, saying what and where."""
    with State() as s:
        with pytest.raises(error) as info:
            Component(_network(), attrs)
        assert len(s.components) == 0
    message = str(info.value)
    assert "Component of Sequential" in message
    for word in words:
        assert word in message, (word, message)


def test_errors_for_properties_items_and_objects():
    """Read-only properties, immutable items, frozen dataclasses, features and empty attrs are refused;
    a value an object's setter refuses raises an error naming the component's path."""

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        rate: float = 0.1

    with State() as s:
        with pytest.raises(TypeError, match=r"read-only property \(Augment.doubled\)"):
            Component(Augment(), ["doubled"])
        with pytest.raises(TypeError, match=r"item of a tuple \(tuple\[1\]\)"):
            Component(Augment(), {"second": "fixed.1"})
        with pytest.raises(UnknownNameError, match=r"fails at 'strenght'.*did you mean 'strength'"):
            Component(Augment(), ["strenght"])
        with pytest.raises(TypeError, match="frozen dataclass"):
            Component(Frozen(), ["rate"])
        with pytest.raises(ValueError, match="attrs is empty and Augment has no state_dict"):
            Component(Augment(), [])
        engine = Engine("engine", lambda e, b: b, data=[1])
        with pytest.raises(TypeError, match="engines.engine is a feature already"):
            Component(engine, ["n_epochs"])
        component = Component(Augment(), ["scale"])
        with pytest.raises(AttributeError, match=r"cannot set components.augment.scale: .*scale must be positive"):
            component.scale = -1
        assert component.scale == 1.0
        assert Component(EMA(), [], name="only_state").state_dict().keys() == {"obj"}
        assert [c.name for c in s.components] == ["augment", "only_state"]


# -- working with the rest ------------------------------------------------------------


def test_filters_run_on_and_hold():
    """`every=` counts sets, an engine runs on each set, a hold fires once with the last value."""
    with State() as s:
        augment = Component(Augment(), ["strength"])
        every_second = []
        augment.strength_ref.attach(every_second.append, every=2)
        probe = Engine("probe", lambda e, b: augment.obj.apply(b), data=[10.0], run_on=augment.strength_ref)
        outputs = []
        probe.output_ref.attach(outputs.append)
        for value in (0.1, 0.2, 0.3, 0.4):
            augment.strength = value
        with s.hold():
            augment.strength = 0.5
            augment.strength = 0.6
    assert every_second == [0.2, 0.4]  # the held pair fired once: the 5th set, not a multiple of 2
    assert outputs == [1.0, 2.0, 3.0, 4.0, 6.0]
    assert probe.n_run_completed == 5


def test_scalar_chart_writes_the_strength_against_n_samples(tmp_path):
    """A ScalarChart of a component's value writes each set at the trainer's sample count,
    read back from the event file with TensorBoard's reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with State():
        augment = Component(Augment(), ["strength"])
        trainer = Engine("trainer", lambda e, b: b, data=[torch.zeros(4, 1)] * 3, n_epochs=6)

        @trainer.n_epoch_completed_ref.attach(every=2)
        def harder():
            augment.strength += 0.5

        chart = ScalarChart(augment.strength_ref, trainer.n_samples_ref, run="trainer")
        writer = TensorBoard(tmp_path)
        trainer.run()
        writer.close()
    events = EventAccumulator(str(tmp_path / "trainer"))
    events.Reload()
    points = [(e.step, e.value) for e in events.Scalars(chart.tag)]
    assert chart.tag == "components/augment/strength"
    assert points == [(24, 0.5), (48, 1.0), (72, 1.5)]


def test_dataflow_graph_and_describe():
    """The data-flow graph has the attribute as an object with its triggers; describe shows its
    value (live), what it is and who it triggers."""
    augment = Augment()
    with State() as s:
        component = Component(augment, ["strength"])
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2])

        @trainer.n_epoch_completed_ref.attach
        def harder():
            component.strength += 0.25

        Engine("probe", lambda e, b: b, data=[1], run_on=component.strength_ref)
        flow = DataFlowGraph(s)
        assert flow.graph.nodes["components.augment.strength"]["cls"] == "_Attribute"
        assert "engines.probe" in flow.downstream(component.strength_ref)
        augment.strength = 0.75  # written outside: describe reads it live
        out = io.StringIO()
        describe("augment.strength", file=out)
    text = out.getvalue()
    assert text.splitlines()[0] == "components.augment.strength"
    assert "Augment attribute 'strength'" in text
    assert "0.75" in text
    assert "engines.probe" in text


# -- exact resume after a SIGKILL -----------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("digits") / "data.pt"
    x = torch.tensor(digits.data[:320], dtype=torch.float32) / 16
    torch.save({"x": x, "y": torch.tensor(digits.target[:320])}, path)
    return path


def _run_script(*runs: str) -> list[int]:
    """Run the script's training runs one after the other; their exit codes."""
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[2])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *runs], env=env, capture_output=True, text=True, timeout=300
    )
    codes = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("exit ")]
    assert result.returncode == 0 and len(codes) == len(runs), result.stdout + result.stderr[-4000:]
    return codes


def _iterations(log: Path) -> dict[int, set[tuple[str, str]]]:
    values: dict[int, set[tuple[str, str]]] = {}
    for words in (line.split() for line in log.read_text().splitlines()):
        if words[0] == "it":
            values.setdefault(int(words[1]), set()).add((words[2], words[3]))
    return values


def test_curriculum_resumes_exactly_after_a_sigkill(tmp_path, data_file):
    """A curriculum strength raised by a callback every 2 epochs: a run SIGKILLed mid-epoch 5 and
    resumed from its latest checkpoint logs the same losses and strengths and ends with the same
    weights, strength and noise generator as a run never stopped."""
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for workdir in (reference, killed):
        workdir.mkdir()
        (workdir / "data.pt").write_bytes(data_file.read_bytes())
    assert _run_script(str(reference), f"{killed}:45", str(killed)) == [0, -signal.SIGKILL, 0]

    lines = (killed / "log.txt").read_text().splitlines()
    # the latest checkpoint is the one of epoch 4 (iteration 40), saved after the raise to 0.5
    assert lines[0] == "started" and "killed 45" in lines
    assert "resumed 40 0.5" in lines
    expected, got = _iterations(reference / "log.txt"), _iterations(killed / "log.txt")
    assert len(expected) == 60 and got.keys() == expected.keys()
    assert {n: v for n, v in got.items() if v != expected[n]} == {}
    strengths = {n: next(iter(vs))[1] for n, vs in expected.items()}
    assert (strengths[20], strengths[21], strengths[41], strengths[60]) == ("0.0", "0.25", "0.5", "0.5")

    want = torch.load(reference / "final.pt", weights_only=True)
    have = torch.load(killed / "final.pt", weights_only=True)
    for key, tensor in want["model"].items():
        assert torch.equal(have["model"][key], tensor), key
    assert have["strength"] == want["strength"] == 0.75
    assert torch.equal(have["generator"], want["generator"])
    assert have["config"]["components.noise.strength"] == 0.75


def test_numpy_scalars_go_through_a_checkpoint(tmp_path):
    """A numpy scalar attribute is saved as a plain number, so the checkpoint loads safely,
    and comes back with its numpy type and exact value."""
    import numpy as np

    from statefire.features import Checkpoint

    with State():
        augment = Augment()
        augment.strength = np.float32(0.1) * 3
        Component(augment, ["strength"])
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2])
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref)
        trainer.run()
    fresh = Augment()
    fresh.strength = np.float32(0.0)
    with State():
        Component(fresh, ["strength"])
        trainer = Engine("trainer", lambda e, b: b, data=[1, 2])
        Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref)
        Checkpoint.load(Checkpoint.latest(tmp_path))
    assert type(fresh.strength) is np.float32 and fresh.strength == np.float32(0.1) * 3


def test_a_subclass_adds_methods():
    """A subclass of Component keeps its methods and gets the attributes as state objects."""

    class Curriculum(Component):
        def harder(self, step: float) -> None:
            self.strength = round(self.strength + step, 6)

    augment = Augment()
    with State() as s:
        curriculum = Curriculum(augment, ["strength"], name="curriculum")
        seen = []
        curriculum.strength_ref.attach(seen.append)
        curriculum.harder(0.25)
        curriculum.harder(0.25)
        assert isinstance(curriculum, Curriculum) and s.config() == {"components.curriculum.strength": 0.5}
        with pytest.raises(NameConflictError, match="'harder' of path 'strength' is an attribute of Curriculum"):
            Curriculum(augment, {"harder": "strength"}, name="other")
    assert seen == [0.25, 0.5] and augment.strength == 0.5
    assert repr(curriculum).startswith("<Curriculum components.curriculum of Augment: strength=0.5")
