"""Types reach users: a type checker sees state objects as their values and refs as `Ref`s.

mypy runs on a tree that maps `statefire/frame` (and `features`, `plugins`)
to the repository folders, because an editable install's import hook is
invisible to type checkers; an installed wheel has the same layout.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_docs import python_blocks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def typeroot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`<tmp>/statefire/{frame,features,plugins}` linked to the repository folders."""
    root = tmp_path_factory.mktemp("typeroot")
    (root / "statefire").mkdir()
    for package in ("frame", "features", "plugins"):
        (root / "statefire" / package).symlink_to(ROOT / package, target_is_directory=True)
    return root


def mypy(typeroot: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--no-error-summary", "--show-error-codes",
         "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(typeroot / ".mypy_cache"), *args],
        cwd=typeroot, env={"MYPYPATH": str(typeroot), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )


def test_frame_passes_mypy_strict(typeroot):
    """`mypy --strict -p statefire.frame` reports no error."""
    result = mypy(typeroot, "--strict", "-p", "statefire.frame")
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_features_and_plugins_pass_mypy(typeroot):
    """Plain `mypy -p statefire.features -p statefire.plugins` reports no error."""
    result = mypy(typeroot, "-p", "statefire.features", "-p", "statefire.plugins")
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


USER_SCRIPT = '''
from typing import Any
from typing_extensions import assert_type
from statefire.frame import Counter, Feature, Handle, Param, Params, Ref, State, StateObject


class Trainer(Feature):
    category = "engines"
    n_samples = Counter(doc="samples seen so far")
    lr = Param(0.1)
    loss = StateObject(0.0)
    batch = StateObject(persist=False)
    n_samples_ref: Ref[int]   # optional: a precise type for the ref


with State() as state:
    trainer = Trainer(name="trainer")
    assert_type(trainer.n_samples, int)
    assert_type(trainer.lr, float)
    assert_type(trainer.loss, float)
    assert_type(trainer.batch, Any)
    assert_type(Trainer.n_samples, Counter)
    assert_type(trainer.n_samples_ref, Ref[int])
    assert_type(trainer.n_samples_ref.value, int)
    assert_type(trainer.loss_ref, Ref[Any])
    assert_type(trainer.loss_ref.attach(print), Handle)
    trainer.n_samples += 32
    trainer.loss = 0.5

    @trainer.n_samples_ref.attach(every=2)
    def report(value: int) -> None:
        print(value)

    assert_type(report.__name__, str)  # still the function, not a Handle
    hp = Params(name="hp", lr=0.1)
    print(hp.lr * 2, state.trainer.n_samples)
'''

BAD_SCRIPT = '''
from statefire.frame import Counter, Feature, StateObject


class Trainer(Feature):
    category = "engines"
    n_samples = Counter()
    loss = StateObject(0.0)


trainer = Trainer()
trainer.n_samples = "many"
trainer.loss = "high"
trainer.n_sampels = 3
'''


def test_a_user_script_sees_value_types(typeroot, tmp_path):
    """State objects read as their value types, refs as `Ref`, decorators keep the function."""
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    result = mypy(typeroot, "--strict", str(script))
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_type_checker_reports_wrong_sets(typeroot, tmp_path):
    """The check can fail: a str set into a Counter or a float object, and a misspelt object, are reported."""
    script = tmp_path / "bad.py"
    script.write_text(BAD_SCRIPT)
    result = mypy(typeroot, str(script))
    lines = result.stdout.splitlines()
    assert any(":12:" in l and "int" in l for l in lines), result.stdout
    assert any(":13:" in l and "float" in l for l in lines), result.stdout
    assert any(":14:" in l and "n_sampels" in l for l in lines), result.stdout


@pytest.mark.parametrize("guide", ["concepts.md", "writing-features.md"])
def test_a_guide_type_checks(typeroot, tmp_path, guide):
    """A guide's code (docs/concepts.md, docs/writing-features.md), as one user script, passes plain mypy."""
    blocks = python_blocks((ROOT / "docs" / guide).read_text(encoding="utf-8"))
    script = tmp_path / guide.replace("-", "_").replace(".md", ".py")
    script.write_text("\n".join(code for _, code in blocks))
    result = mypy(typeroot, str(script))
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@pytest.mark.parametrize("package", ["features", "plugins"])
def test_lazy_exports_have_real_imports_for_type_checkers(package):
    """The `if TYPE_CHECKING:` block of a lazy package imports exactly the names of `_EXPORTS`."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    exports: dict[str, str] = {}
    imported: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
            exports = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.level == 1
                for alias in statement.names:
                    assert alias.asname == alias.name  # an explicit re-export
                    imported[alias.name] = str(statement.module)
    assert exports and imported == exports


def test_declared_ref_annotations_match_state_objects():
    """Every `<name>_ref` a class declares for a state object is a `Ref[...]` of the object's value type."""
    import importlib
    import inspect
    import pkgutil

    from statefire.frame import Observable

    checked = 0
    for package in ("statefire.frame", "statefire.features", "statefire.plugins"):
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            mod = importlib.import_module(f"{package}.{info.name}")
            for cls in vars(mod).values():
                if not (inspect.isclass(cls) and issubclass(cls, Observable)) or cls.__module__ != mod.__name__:
                    continue
                objects = cls.state_objects()
                for name, annotation in vars(cls).get("__annotations__", {}).items():
                    # `x_ref` of a state object `x` (a feature may also keep a ref it was given as `y_ref`)
                    if name.endswith("_ref") and name[:-4] in objects:
                        assert re.fullmatch(r"Ref\[.+\]", str(annotation)), f"{cls.__name__}.{name}: {annotation}"
                        value_type = vars(cls).get("__annotations__", {}).get(name[:-4])
                        if value_type is not None:  # declared both ways: the same value type
                            assert str(annotation) == f"Ref[{str(value_type).removeprefix('StateObject[')[:-1]}]"
                        checked += 1
    assert checked >= 2  # Container.added_ref and removed_ref at least


def test_the_wheel_ships_py_typed(tmp_path):
    """The built wheel holds `statefire/{frame,features,plugins}/py.typed`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("statefire-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("frame", "features", "plugins"):
        assert f"statefire/{package}/py.typed" in names
