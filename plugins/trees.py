"""Experiment trees: states branching by recipes, cached by content, resumable, queryable.

A root state is made by `build()`; a recipe (train, prune, fine-tune, change
the learning rate...) turns a node's state into a child's. Every node is a
checkpoint file (the `Checkpoint` format) plus a JSON record, named by a
content hash of its parent, its recipe's name and source, and its kwargs, so
running a script again computes only what changed, and a killed run
continues from the nodes already on disk.

On disk, `<dir>/`:
    tree.json                the feature layout `build()` makes (checked on reuse)
    nodes/<id>.pt            a node's state (Checkpoint format, safe loading)
    nodes/<id>.json          its record: recipe, kwargs, parent, status, metrics, duration
    tb/<folder>/<engine>     what `TensorBoard()` wrote inside the node
    checkpoints/<folder>/    what `Checkpoint()` wrote inside the node
    .lock                    held by the process running the tree
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import textwrap
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from statefire.frame import Feature, State
from statefire.frame.errors import FrameError, StateDictError

from ._trees_draw import draw, mermaid
from .runs import atomic_write

__all__ = [
    "ExperimentTree",
    "TreeNode",
    "TreeRunResult",
    "TreeError",
    "RecipeError",
    "BuildMismatchError",
    "NodeStateError",
    "TreeLockedError",
]

_TREE_FORMAT = "statefire-tree"
_NODE_FORMAT = "statefire-tree-node"
_VERSION = 1
_ID_LENGTH = 20  # hex digits of the sha256: 80 bits
_SHORT_ID = 8
_TEMP_MARK = ".tmp-"
_NODES = "nodes"

#: The statuses a node goes through.
PENDING, COMPLETED, FAILED, SKIPPED = "pending", "completed", "failed", "skipped"


class TreeError(FrameError):
    """Base of the errors an experiment tree raises."""


class RecipeError(TreeError, TypeError):
    """A recipe (or `build`) cannot be identified, or its kwargs are not JSON data."""


class BuildMismatchError(TreeError, ValueError):
    """`build()` makes features that do not match the nodes already saved in the tree."""


class NodeStateError(TreeError, ValueError):
    """A recipe left a state that would not load into a State freshly made by `build()`."""


class TreeLockedError(TreeError, TimeoutError):
    """Another process is running the tree and did not finish within the timeout."""


# -- identity: recipes, kwargs, ids ----------------------------------------------------------


# code object -> dedented source. Keyed by code, never by function: a function would keep its
# module's globals (and any State in them) alive.
_SOURCES: dict[Any, str] = {}


def _source_of(func: Any, name: str) -> str:
    code = func.__code__
    source = _SOURCES.get(code)
    if source is None:
        try:
            source = textwrap.dedent(inspect.getsource(func))
        except (OSError, TypeError) as error:
            raise RecipeError(
                f"recipe {name!r} has no readable source ({error}); an experiment tree identifies a recipe by its "
                "source code, so define it with `def` in a file or a notebook (not at a plain Python prompt or "
                "in exec)"
            ) from None
        if len(_SOURCES) > 4096:
            _SOURCES.clear()
        _SOURCES[code] = source
    return source


def _identity(recipe: Any, role: str = "recipe") -> tuple[str, str, str]:
    """(name, qualified name, identity text) of a recipe; a clear error when it has none."""
    if isinstance(recipe, functools.partial):
        raise RecipeError(
            f"{role} {recipe!r} is a functools.partial, which has no source of its own to hash; pass the "
            "function and give the bound values as kwargs: then(fn, amount=0.3)"
        )
    func = recipe.__func__ if inspect.ismethod(recipe) else recipe
    if not inspect.isfunction(func):
        raise RecipeError(
            f"{role} must be a function defined with `def` or `lambda` (called as {role}(state, **kwargs)), "
            f"got {type(recipe).__name__}: {recipe!r}"
        )
    name = func.__name__
    source = _source_of(func, name)
    if name == "<lambda>":
        # The source of a lambda is its whole line: two lambdas on one line are told apart
        # by what they call and the constants they hold.
        code = func.__code__
        consts = [repr(c) for c in code.co_consts if not inspect.iscode(c)]
        source += f"\n# names {code.co_names!r} consts {consts!r}"
    module = func.__module__ or ""
    if module == "__main__":  # `python exp.py` and `import exp` name the recipe alike
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        module = Path(main_file).stem if main_file else module
    qualified = f"{module}.{func.__qualname__}" if module else func.__qualname__
    return name, qualified, source


def _plain(value: Any, path: str, recipe: str) -> Any:
    """`value` as plain JSON data (bool, int, float, str, None, lists, str-keyed dicts), or an error.

    `path` locates the value in the kwargs (`'amounts'[0]`) for the error message.
    """
    where = f"kwarg {path} of recipe {recipe!r}"
    if value is None or type(value) in (bool, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecipeError(f"{where} is {value!r}; kwargs must be finite numbers (JSON has no NaN or infinity)")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]", recipe) for i, item in enumerate(value)]
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecipeError(f"{where} has the key {key!r} ({type(key).__name__}); JSON dict keys are strings")
            plain[key] = _plain(item, f"{path}[{key!r}]", recipe)
        return plain
    hint = "a list" if isinstance(value, tuple) else "a name, number or list, and make the object inside the recipe"
    raise RecipeError(
        f"{where} is {type(value).__name__}: {value!r}; kwargs must be JSON data (str, int, float, bool, None, "
        f"lists and dicts of them), since they are hashed into the node's id and saved in its record; pass {hint}"
    )


def _canonical(data: Any) -> str:
    # sort_keys: the order kwargs are written in does not change the node; 1 and 1.0 stay apart
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _hash(data: Any) -> str:
    return hashlib.sha256(_canonical(data).encode()).hexdigest()[:_ID_LENGTH]


def _step_text(name: str, kwargs: Mapping[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={kwargs[k]!r}' for k in sorted(kwargs))})"


def _folder_name(steps: list[str], node_id: str) -> str:
    """A file-name-safe folder named from the node's steps (its path) and a short id."""
    parts = [re.sub(r"[^A-Za-z0-9_.,=()+-]", "_", step) for step in steps]
    text = "~".join(parts[1:]) or parts[0]
    if len(text) > 96:  # keep the end: the last recipes tell the branches apart
        text = "..." + text[-93:]
    return f"{text}~{node_id[:_SHORT_ID]}"


# -- state layout: what build() makes, what a node must keep -----------------------------------


def _signature(state_dict: Any, prefix: str = "") -> dict[str, str]:
    """Every path of a state dict with what must not change: tensors' shapes.

    It descends into non-empty dicts with string keys (categories, features,
    a model's parameters) and stops at anything else (an optimizer's
    per-parameter state, keyed by ints, grows with training).
    """
    result: dict[str, str] = {}
    if isinstance(state_dict, dict) and state_dict and all(isinstance(k, str) for k in state_dict):
        for key, value in state_dict.items():
            result.update(_signature(value, f"{prefix}.{key}" if prefix else key))
        return result
    shape = getattr(state_dict, "shape", None)
    result[prefix] = f"tensor{list(shape)}" if shape is not None and hasattr(state_dict, "dtype") else "value"
    return result


def _differences(expected: dict[str, str], state_dict: Any) -> list[str]:
    """How `state_dict` differs from the layout `expected`: missing, unexpected, reshaped paths."""
    found: dict[str, str] = {}
    for path, description in _signature(state_dict).items():
        parts = path.split(".")
        # below a leaf of the layout (an optimizer's state, empty when built) anything goes
        leaf = next((p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if p in expected), None)
        if leaf is None:
            found[path] = description
        else:
            found[leaf] = expected[leaf]
    problems = [f"missing {p}" for p in sorted(set(expected) - set(found))]
    problems += [f"unexpected {p}" for p in sorted(set(found) - set(expected))]
    problems += [
        f"{p} is {found[p]}, expected {expected[p]}"
        for p in sorted(set(found) & set(expected))
        if _reshaped(expected[p], found[p])
    ]
    return problems


def _layout_problems(saved: dict[str, str], layout: dict[str, str]) -> bool:
    return set(saved) != set(layout) or any(_reshaped(saved[p], layout[p]) for p in saved)


def _reshaped(before: str, after: str) -> bool:
    # a value that is None when built and a tensor once trained (an RNG state) is fine; a new shape is not
    return before != after and before != "value" and after != "value"


# -- files --------------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON atomically; the temp file carries `_TEMP_MARK`, so a killed writer's is found later."""
    temp = path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}")
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True), temp=temp)


def _rng_state() -> tuple[Any, Any, Any]:
    import numpy as np
    import torch

    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _set_rng_state(saved: tuple[Any, Any, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(saved[0])
    np.random.set_state(saved[1])
    torch.set_rng_state(saved[2])


class _Lock:
    """An exclusive `fcntl.flock` on `<dir>/.lock`: one process runs a tree at a time.

    The kernel drops the lock when its holder dies, so a killed run leaves no stale lock.
    """

    def __init__(self, directory: Path, timeout: float | None) -> None:
        self.path = directory / ".lock"
        self.timeout = timeout
        self.file: Any = None

    def __enter__(self) -> _Lock:
        import fcntl  # POSIX only: imported here so that reading a tree works everywhere

        self.file = open(self.path, "a+", encoding="utf-8")
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    self.file.seek(0)
                    holder = self.file.read().strip() or "unknown"
                    self.file.close()
                    raise TreeLockedError(
                        f"experiment tree {str(self.path.parent)!r} is being run by another process (pid {holder}) "
                        f"and stayed locked for {self.timeout} s; wait for it (run(timeout=None) waits as long as "
                        "it takes) or use another directory"
                    ) from None
                time.sleep(0.05)
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        import fcntl

        self.file.seek(0)
        self.file.truncate()
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.file.close()


# -- nodes --------------------------------------------------------------------------------------


class _NodeArtifacts(Feature):
    """The artifact provider of a node being computed: `TensorBoard()` and `Checkpoint()` write here."""

    category = "plugins"

    def __init__(self, root: Path, folder: str) -> None:
        super().__init__(name=State.current().free_name("experiment_tree_node"))
        self.root = root
        self.folder = folder

    def artifact_dir(self, kind: str) -> Path:
        return self.root / kind / self.folder


@dataclasses.dataclass(eq=False, repr=False)  # a node is itself, not its fields: hashable by identity
class TreeNode:
    """A node of an `ExperimentTree`: a state, the recipe that made it from its parent's, its record.

    A node made by `then()` is a promise (`status == "pending"`) until
    `tree.run()` realizes it (`"completed"`, or `"failed"` with `error`;
    `"skipped"` when an ancestor failed).

    Attributes:
        id: content hash of the parent's id, the recipe's name and source, and the kwargs.
        recipe: the recipe's qualified name (`"exp.prune"`; `"build"` for a root).
        name: the recipe's name (`"prune"`).
        kwargs: the recipe's kwargs (JSON data).
        parent: the parent node (None for a root); `children`: the nodes made from this one.
        depth: 0 for a root; `path`: `"root/train(n_epochs=5)/prune(amount=0.3)"`.
        status: `"pending"`, `"completed"`, `"failed"` or `"skipped"`.
        metrics: every numeric metric's value when the recipe ended, by metric name.
        duration: seconds the node took (build, load, recipe, save).
        error: why it failed (`"RuntimeError: ..."`), and `traceback` where.

    Example:
        >>> import tempfile
        >>> from statefire.frame import Params
        >>> from statefire.plugins import ExperimentTree
        >>> def build():
        ...     Params(name="hp", level=0)
        >>> def raise_level(state, by):
        ...     state.hp.level += by
        >>> tree = ExperimentTree(tempfile.mkdtemp(), build)
        >>> node = tree.root().then(raise_level, by=2).then(raise_level, by=3)
        >>> _ = tree.run()
        >>> node.path, node.depth, node.status, node.load().hp.level
        ('root/raise_level(by=2)/raise_level(by=3)', 2, 'completed', 5)
    """

    tree: ExperimentTree
    id: str
    _: dataclasses.KW_ONLY
    recipe: str
    name: str
    kwargs: dict[str, Any]
    parent: TreeNode | None
    path: str
    depth: int
    # What running the node finds out: set by the tree, not by whoever makes the node.
    children: list[TreeNode] = dataclasses.field(init=False, default_factory=list)
    status: str = dataclasses.field(init=False, default=PENDING)
    metrics: dict[str, float] = dataclasses.field(init=False, default_factory=dict)
    duration: float | None = dataclasses.field(init=False, default=None)
    error: str | None = dataclasses.field(init=False, default=None)
    traceback: str | None = dataclasses.field(init=False, default=None)
    finished: str | None = dataclasses.field(init=False, default=None)
    # the recipe, when made by then() in this process
    _function: Callable[..., Any] | None = dataclasses.field(init=False, default=None)

    @property
    def short_id(self) -> str:
        """The first 8 characters of the id."""
        return self.id[:_SHORT_ID]

    @property
    def folder(self) -> str:
        """The folder of this node's artifacts below `<tree dir>/tb/` and `<tree dir>/checkpoints/`."""
        steps: list[str] = []
        node: TreeNode | None = self
        while node is not None:
            steps.append(node.step)
            node = node.parent
        if steps[-1] != "root":  # an orphan whose parent's files are gone: its path still starts at the root
            steps = self.path.split("/")[::-1]
        return _folder_name(steps[::-1], self.id)

    @property
    def step(self) -> str:
        """The last part of the path: `"prune(amount=0.3)"`, or `"root"`."""
        return "root" if self.parent is None and self.depth == 0 else _step_text(self.name, self.kwargs)

    @property
    def checkpoint_path(self) -> Path:
        """The node's checkpoint file (it exists once the node is completed)."""
        return self.tree.dir / _NODES / f"{self.id}.pt"

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    def then(self, recipe: Callable[..., Any], **kwargs: Any) -> TreeNode:
        """The child made by `recipe(state, **kwargs)` from this node's state: a promise until `tree.run()`.

        Calling it again with the same recipe and kwargs returns the same node,
        realized already if it is on disk.

        Raises:
            RecipeError: the recipe has no readable source, or a kwarg is not JSON data.
        """
        return self.tree._child(self, recipe, kwargs)

    def load(self) -> State:
        """A fresh State made by `build()` with this node's state restored, for inspection.

        The caller's RNG states are left as they were. The State's TensorBoard
        writers write nothing, and a `Checkpoint()` given no directory writes
        into a scratch directory removed with the State, so inspecting (even
        training) a loaded node never touches the tree.
        """
        return self.tree._load_node(self)

    def record(self) -> dict[str, Any]:
        """The node's record as saved in `nodes/<id>.json`."""
        return {
            "format": _NODE_FORMAT,
            "version": _VERSION,
            "id": self.id,
            "parent": None if self.parent is None else self.parent.id,
            "recipe": self.recipe,
            "name": self.name,
            "kwargs": self.kwargs,
            "path": self.path,
            "depth": self.depth,
            "status": self.status,
            "metrics": self.metrics,
            "duration": self.duration,
            "error": self.error,
            "traceback": self.traceback,
            "finished": self.finished,
        }

    def __repr__(self) -> str:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items())
        return f"<TreeNode {self.path} {self.short_id} {self.status}{': ' + metrics if metrics else ''}>"


@dataclasses.dataclass
class TreeRunResult:
    """What one `tree.run()` did: nodes computed, found on disk, failed, skipped.

    Example:
        >>> import tempfile
        >>> from statefire.frame import Params
        >>> from statefire.plugins import ExperimentTree
        >>> def build():
        ...     Params(name="hp", level=0)
        >>> tree = ExperimentTree(tempfile.mkdtemp(), build)
        >>> _ = tree.root()
        >>> tree.run(), tree.run()
        (<TreeRunResult computed=1 cached=0 failed=0 skipped=0>, <TreeRunResult computed=0 cached=1 failed=0 skipped=0>)
    """

    computed: list[TreeNode] = dataclasses.field(default_factory=list)
    cached: list[TreeNode] = dataclasses.field(default_factory=list)
    failed: list[TreeNode] = dataclasses.field(default_factory=list)
    skipped: list[TreeNode] = dataclasses.field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"<TreeRunResult computed={len(self.computed)} cached={len(self.cached)} "
            f"failed={len(self.failed)} skipped={len(self.skipped)}>"
        )


# -- the tree -----------------------------------------------------------------------------------


class ExperimentTree:
    """A tree of experiment states: a root made by `build()`, children made by recipes.

    A node is computed in a fresh `State`: `build()` makes the features, the
    parent's checkpoint is loaded (its RNG states included), then
    `recipe(state, **kwargs)` runs. Nodes are saved in `dir` and named by
    content, so a rerun computes only new or changed nodes, and a killed run
    continues from the nodes on disk with the same numbers.

    Args:
        dir: the tree's directory (created on the first run). A tree already
            there is opened: its realized nodes are available at once.
        build: makes the features of one experiment in the current State
            (`State.current()`; never the global `frame.state`). None opens
            the tree read-only, as `ExperimentTree.load(dir)` does.

    Example:
        >>> import tempfile
        >>> from statefire.frame import Params
        >>> from statefire.plugins import ExperimentTree
        >>> def build():
        ...     Params(name="hp", lr=0.1)
        >>> def scale_lr(state, factor):
        ...     state.hp.lr *= factor
        >>> tree = ExperimentTree(tempfile.mkdtemp(), build)
        >>> for factor in (0.5, 2.0):
        ...     _ = tree.root().then(scale_lr, factor=factor)
        >>> tree.run()
        <TreeRunResult computed=3 cached=0 failed=0 skipped=0>
        >>> [node.path for node in tree.leaves()]
        ['root/scale_lr(factor=0.5)', 'root/scale_lr(factor=2.0)']
        >>> tree.map(lambda state: state.hp.lr, tree.find(recipe="scale_lr"))  # doctest: +ELLIPSIS
        {'...': 0.05, '...': 0.2}
    """

    def __init__(self, dir: str | os.PathLike[str], build: Callable[[], Any] | None = None) -> None:
        if not isinstance(dir, (str, os.PathLike)) or not os.fspath(dir):
            raise TypeError(f"dir of ExperimentTree must be a non-empty path, got {dir!r}")
        self.dir = Path(dir)
        self._build = build
        self._root_id: str | None = None
        if build is not None:
            name, qualified, source = _identity(build, role="build")
            self._root_id = _hash({"build": name, "source": source})
            self._build_name = qualified
        self._nodes: dict[str, TreeNode] = {}
        self._layout: dict[str, str] | None = None  # build()'s layout, once checked in this process
        self._read()

    @classmethod
    def load(cls, dir: str | os.PathLike[str]) -> ExperimentTree:
        """Open the tree in `dir` for queries, without `build` or recipes.

        Raises:
            FileNotFoundError: `dir` holds no experiment tree.
        """
        tree = cls(dir)
        if not (tree.dir / _NODES).is_dir():
            raise FileNotFoundError(
                f"{str(tree.dir)!r} holds no experiment tree (no {_NODES}/ folder); run a tree there first, "
                "e.g. ExperimentTree(dir, build).run()"
            )
        return tree

    # -- reading ------------------------------------------------------------------
    def _read(self) -> None:
        """Read every record on disk; nodes already known take the newer record."""
        folder = self.dir / _NODES
        if not folder.is_dir():
            return
        records = {}
        for path in folder.glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                warnings.warn(f"experiment tree: skipped the unreadable record {str(path)!r} ({error})", stacklevel=3)
                continue
            if not isinstance(record, dict) or record.get("format") != _NODE_FORMAT or record.get("id") != path.stem:
                continue
            if record.get("status") == COMPLETED and not (folder / f"{path.stem}.pt").is_file():
                continue  # its checkpoint is gone: the node is not realized
            records[path.stem] = record
        for record in sorted(records.values(), key=lambda r: r.get("depth", 0)):
            self._adopt(record, records)

    def _adopt(self, record: dict[str, Any], records: dict[str, dict[str, Any]]) -> TreeNode:
        node = self._nodes.get(record["id"])
        if node is None:
            parent_id = record.get("parent")
            parent = None
            if parent_id is not None:
                parent = self._nodes.get(parent_id)
                if parent is None and parent_id in records:
                    parent = self._adopt(records[parent_id], records)
            node = TreeNode(
                self,
                record["id"],
                recipe=record.get("recipe", "?"),
                name=record.get("name", "?"),
                kwargs=record.get("kwargs") or {},
                parent=parent,
                path=record.get("path", "?"),
                depth=int(record.get("depth", 0)),
            )
            self._nodes[node.id] = node
            if parent is not None:
                parent.children.append(node)
        if node.status != COMPLETED:
            node.status = record.get("status", FAILED)
            node.metrics = dict(record.get("metrics") or {})
            node.duration = record.get("duration")
            node.error = record.get("error")
            node.traceback = record.get("traceback")
            node.finished = record.get("finished")
        return node

    # -- building the tree ------------------------------------------------------------
    def root(self) -> TreeNode:
        """The root: the state `build()` makes (depth 0, path `root`)."""
        if self._build is None:
            raise TreeError(
                f"tree {str(self.dir)!r} was opened without build(), so it cannot make nodes; "
                "open it with ExperimentTree(dir, build)"
            )
        assert self._root_id is not None
        node = self._nodes.get(self._root_id)
        if node is None:
            node = TreeNode(self, self._root_id, recipe=self._build_name, name="build", kwargs={}, parent=None,
                            path="root", depth=0)  # fmt: skip
            self._nodes[node.id] = node
        node._function = self._build
        return node

    def _child(self, parent: TreeNode, recipe: Callable[..., Any], kwargs: dict[str, Any]) -> TreeNode:
        if self._build is None:
            raise TreeError(
                f"tree {str(self.dir)!r} was opened without build(), so then() cannot make nodes; "
                "open it with ExperimentTree(dir, build)"
            )
        name, qualified, source = _identity(recipe)
        plain = {key: _plain(value, repr(key), name) for key, value in kwargs.items()}
        node_id = _hash({"parent": parent.id, "recipe": name, "source": source, "kwargs": plain})
        node = self._nodes.get(node_id)
        if node is None:
            node = TreeNode(self, node_id, recipe=qualified, name=name, kwargs=plain, parent=parent,
                            path=f"{parent.path}/{_step_text(name, plain)}", depth=parent.depth + 1)  # fmt: skip
            self._nodes[node_id] = node
            parent.children.append(node)
        node._function = recipe
        return node

    # -- running ------------------------------------------------------------------------
    def run(self, *, timeout: float | None = None) -> TreeRunResult:
        """Realize every pending node: parents first, each once, one at a time in this process.

        A node whose recipe raises is `failed` (with the error) and its
        descendants are skipped; the other branches go on, and a later run
        retries it. The caller's RNG states are restored afterwards.

        Args:
            timeout: how long to wait, in seconds, while another process runs
                the same tree (None: as long as it takes; 0: fail at once).

        Raises:
            TreeLockedError: the tree stayed locked by another process past `timeout`.
            BuildMismatchError: `build()` makes features unlike the saved nodes'.
        """
        if self._build is None:
            raise TreeError(
                f"tree {str(self.dir)!r} was opened without build(); open it with ExperimentTree(dir, build)"
            )
        result = TreeRunResult()
        wanted = [n for n in self._nodes.values() if n._function is not None]
        if all(n.completed for n in wanted):
            result.cached = wanted
            return result
        (self.dir / _NODES).mkdir(parents=True, exist_ok=True)
        saved_rng = _rng_state()
        try:
            with _Lock(self.dir, timeout):
                self._read()  # another process may have realized nodes while this one waited
                for temp in (self.dir / _NODES).glob(f"*{_TEMP_MARK}*"):
                    temp.unlink(missing_ok=True)  # a killed writer's; no one else writes while we hold the lock
                for node in self._in_order(wanted):
                    self._realize(node, result)
        finally:
            _set_rng_state(saved_rng)
        return result

    def _in_order(self, wanted: list[TreeNode]) -> Iterator[TreeNode]:
        """Depth first from the roots, in the order nodes were made: parents before children."""
        chosen = set(map(id, wanted))
        roots = [n for n in wanted if n.parent is None or id(n.parent) not in chosen]
        stack = list(reversed(roots))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed([c for c in node.children if id(c) in chosen]))

    def _realize(self, node: TreeNode, result: TreeRunResult) -> None:
        if node.completed:
            result.cached.append(node)
            return
        parent = node.parent
        if parent is not None and not parent.completed:
            node.status, node.error = SKIPPED, f"{parent.path} is {parent.status}"
            result.skipped.append(node)
            return
        try:
            self._compute(node)
        except _RecipeFailed as failure:
            error = failure.__cause__
            assert error is not None
            node.status = FAILED
            node.error = f"{type(error).__name__}: {error}"
            node.traceback = "".join(traceback.format_exception(error))
            node.metrics, node.duration = {}, failure.duration
            node.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write_json(self.dir / _NODES / f"{node.id}.json", node.record())
            result.failed.append(node)
            warnings.warn(f"experiment tree: {node.path} failed: {node.error}", stacklevel=3)
            return
        result.computed.append(node)

    def _compute(self, node: TreeNode) -> None:
        import statefire.features.checkpoint  # noqa: F401  (imported before the clock starts: not the node's time)

        start = time.perf_counter()
        self._clear_artifacts(node.folder)  # a killed attempt's partial event files and checkpoints
        nodes_dir = self.dir / _NODES
        with State() as state:
            build_features = self._make(state)
            if node.parent is not None:
                from statefire.features.checkpoint import Checkpoint

                Checkpoint.load(node.parent.checkpoint_path, state=state)  # the RNG states too
            _NodeArtifacts(self.dir, node.folder)
            try:
                returned = None
                if node.parent is not None:
                    assert node._function is not None
                    returned = node._function(state, **json.loads(_canonical(node.kwargs)))  # a copy
                metrics = _metrics_of(state, returned, node)
            except Exception as error:
                _close_writers(state)
                raise _RecipeFailed(time.perf_counter() - start) from error
            _close_writers(state)
            for feature in state.features:  # what the recipe added (and the artifact provider)
                if id(feature) not in build_features:
                    state.remove(feature, announce=False)
            state_dict = state.state_dict()
            assert self._layout is not None
            problems = _differences(self._layout, state_dict)
            if problems:
                unloadable = NodeStateError(
                    f"recipe {node.recipe!r} ({node.path}) left a state that does not load into a State made by "
                    f"build(): {'; '.join(problems[:12])}{' ...' if len(problems) > 12 else ''}. A recipe must keep "
                    "the model's structure loadable (e.g. call torch.nn.utils.prune.remove after pruning)"
                )
                raise _RecipeFailed(time.perf_counter() - start) from unloadable
            from statefire.features.checkpoint import Checkpoint

            Checkpoint.write(nodes_dir / f"{node.id}.pt", state=state, save_number=node.depth + 1)
        node.status, node.error, node.traceback = COMPLETED, None, None
        node.metrics = metrics
        node.duration = time.perf_counter() - start
        node.finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        # the record last: a node is realized once its record says so, and its checkpoint is complete by then
        _write_json(nodes_dir / f"{node.id}.json", node.record())

    def _make(self, state: State) -> set[int]:
        """Run `build()` in `state`; check (once) its layout against the tree's; the ids of its features."""
        assert self._build is not None
        # imported first: it teaches engines to save a global-RNG data order, which changes their layout
        import statefire.features.checkpoint  # noqa: F401

        self._build()
        if not state.features:
            raise TreeError(
                f"build() {self._build_name!r} made no feature in the current State; make the features with the "
                "current State (State.current()), not the global frame.state"
            )
        if self._layout is None:
            layout = _signature(state.state_dict())
            meta = self.dir / "tree.json"
            saved = None
            if meta.is_file():
                saved = json.loads(meta.read_text(encoding="utf-8")).get("layout")
            if saved is not None and _layout_problems(saved, layout):
                problems = [f"missing {p}" for p in sorted(set(saved) - set(layout))]
                problems += [f"new {p}" for p in sorted(set(layout) - set(saved))]
                problems += [f"{p} is {layout[p]}, was {saved[p]}" for p in sorted(set(layout) & set(saved))
                             if _reshaped(saved[p], layout[p])]  # fmt: skip
                raise BuildMismatchError(
                    f"build() {self._build_name!r} makes features unlike the nodes saved in {str(self.dir)!r}: "
                    f"{'; '.join(problems[:20])}{' ...' if len(problems) > 20 else ''}. Keep build()'s features "
                    "as they were, or use a new directory for the new layout"
                )
            if saved is None and self.dir.is_dir():
                _write_json(meta, {"format": _TREE_FORMAT, "version": _VERSION, "build": self._build_name,
                                   "layout": layout})  # fmt: skip
            self._layout = layout
        return set(map(id, state.features))

    def _clear_artifacts(self, folder: str) -> None:
        if not self.dir.is_dir():
            return
        for kind in self.dir.iterdir():
            if kind.is_dir() and kind.name != _NODES and (kind / folder).exists():
                shutil.rmtree(kind / folder)

    # -- inspecting -----------------------------------------------------------------------
    def _load_node(self, node: TreeNode) -> State:
        if self._build is None:
            raise TreeError(
                f"node {node.path} cannot be loaded: tree {str(self.dir)!r} was opened without build(); "
                "open it with ExperimentTree(dir, build) to restore states"
            )
        if not node.completed:
            raise TreeError(f"node {node.path} is {node.status}, it has no saved state; run the tree first")
        from statefire.features.checkpoint import Checkpoint
        from statefire.features.tensorboard import TensorBoard

        saved_rng = _rng_state()
        state = State()
        try:
            with state:
                self._make(state)
                scratch = _NodeArtifacts(Path(tempfile.mkdtemp(prefix="statefire-node-")), node.folder)
                weakref.finalize(scratch, shutil.rmtree, scratch.root, True)  # gone with the State
                for writer in state.writers:
                    if isinstance(writer, TensorBoard):
                        writer.writer = _discarding_writer  # type: ignore[method-assign]
                try:
                    Checkpoint.load(node.checkpoint_path, state=state, restore_rng=False)
                except StateDictError as error:
                    raise BuildMismatchError(
                        f"node {node.path} does not load into the State build() makes: {error}"
                    ) from None
        finally:
            _set_rng_state(saved_rng)
        return state

    @property
    def nodes(self) -> list[TreeNode]:
        """Every node known: on disk (completed, failed) and made by `then()` in this process."""
        return sorted(self._nodes.values(), key=lambda n: (n.depth, n.path))

    def node(self, id: str) -> TreeNode:
        """The node of this id (or of a unique prefix of it, e.g. a short id)."""
        node = self._nodes.get(id)
        if node is not None:
            return node
        matches = [n for n in self._nodes.values() if n.id.startswith(id)] if id else []
        if len(matches) == 1:
            return matches[0]
        raise KeyError(
            f"tree {str(self.dir)!r} has {'several nodes' if matches else 'no node'} with id {id!r}"
            + (f": {[n.path for n in matches]}; give more characters" if matches else "")
        )

    def find(self, recipe: str | None = None, where: Callable[[TreeNode], Any] | None = None) -> list[TreeNode]:
        """Completed nodes, optionally of a recipe (its name `"prune"` or qualified name) and passing `where`."""
        if recipe is not None and not isinstance(recipe, str):
            raise TypeError(f"recipe of find() is a recipe's name, e.g. 'prune', got {recipe!r}")
        found = []
        for node in self.nodes:
            if not node.completed:
                continue
            if recipe is not None and recipe not in (node.name, node.recipe):
                continue
            if where is not None and not where(node):
                continue
            found.append(node)
        return found

    def leaves(self) -> list[TreeNode]:
        """Completed nodes with no completed child."""
        return [n for n in self.find() if not any(c.completed for c in n.children)]

    def failed(self) -> list[TreeNode]:
        """Nodes whose recipe raised (the latest attempt), with their `error`."""
        return [n for n in self.nodes if n.status == FAILED]

    @property
    def graph(self) -> nx.DiGraph:
        """The completed and failed nodes as a networkx DiGraph (parent -> child), with their records."""
        graph = nx.DiGraph()
        for node in self.nodes:
            if node.status in (COMPLETED, FAILED):
                graph.add_node(node.id, **{k: v for k, v in node.record().items() if k not in ("format", "version")})
        for node in self.nodes:
            if node.parent is not None and node.id in graph and node.parent.id in graph:
                graph.add_edge(node.parent.id, node.id)
        return graph

    def map(self, fn: Callable[[State], Any], nodes: Iterable[TreeNode] | None = None) -> dict[str, Any]:
        """`fn(state)` on each node's restored state (default: every completed node): `{node.id: result}`.

        Each node is restored into its own fresh State with `node.load()`;
        nothing is saved back, so `fn` inspects (evaluates, measures) and changes no node.
        """
        results = {}
        for node in self.find() if nodes is None else nodes:
            if not isinstance(node, TreeNode):
                raise TypeError(f"nodes of map() must be TreeNodes (e.g. tree.find(...)), got {node!r}")
            results[node.id] = fn(node.load())
        return results

    def format(self, metrics: Iterable[str] | None = None) -> str:
        """The tree as text: each node's step, status, short id, chosen metrics (default: all) and duration."""
        chosen = None if metrics is None else list(metrics)
        lines: list[str] = []

        def show(node: TreeNode, lead: str, branch: str) -> None:
            step = node.step
            values = node.metrics if chosen is None else {k: node.metrics[k] for k in chosen if k in node.metrics}
            parts = [f"{lead}{branch}{step}", node.status, node.short_id]
            parts += [f"{k}={v:.4g}" for k, v in values.items()]
            if node.duration is not None:
                parts.append(f"{node.duration:.2f}s")
            if node.error:
                parts.append(node.error.splitlines()[0][:120])
            lines.append("  ".join(parts))
            kids = sorted((c for c in node.children if c.status != PENDING), key=lambda c: c.path)
            child_lead = lead + ("" if not branch else "   " if branch == "└─ " else "│  ")
            for i, child in enumerate(kids):
                show(child, child_lead, "└─ " if i == len(kids) - 1 else "├─ ")

        for root in [n for n in self.nodes if n.parent is None and n.status != PENDING]:
            show(root, "", "")
        return "\n".join(lines) if lines else f"(no node in {self.dir})"

    def save(self, path: str | os.PathLike[str], *, metric: str | None = None, dpi: int = 120) -> None:
        """Draw the tree: `.png` / `.svg` / `.pdf` with matplotlib, `.mmd` as Mermaid text.

        Each node is labelled with its step and, when given, the value of `metric`.
        """
        target = Path(path)
        ext = target.suffix.lower()
        graph = self.graph
        labels = {}
        for node_id, data in graph.nodes(data=True):
            label = self._nodes[node_id].step
            value = data["metrics"].get(metric) if metric else None
            if value is not None:
                label += f"\n{metric}={value:.4g}"
            elif data["status"] == FAILED:
                label += "\nfailed"
            labels[node_id] = label
        if ext in (".mmd", ".mermaid"):
            target.write_text(mermaid(graph, labels), encoding="utf-8")
            return
        if ext not in (".png", ".svg", ".pdf"):
            raise ValueError(f"cannot save an experiment tree as {str(path)!r}; use .png, .svg, .pdf or .mmd")
        draw(graph, labels, target, dpi)

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for node in self._nodes.values():
            counts[node.status] = counts.get(node.status, 0) + 1
        detail = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        return f"<ExperimentTree {str(self.dir)!r}: {len(self._nodes)} nodes{' (' + detail + ')' if detail else ''}>"


class _RecipeFailed(Exception):
    """Carries a recipe's error (as its cause) and the time spent, to `_realize`."""

    def __init__(self, duration: float) -> None:
        super().__init__()
        self.duration = duration


def _metrics_of(state: State, returned: Any, node: TreeNode) -> dict[str, float]:
    """Every metric holding one number, plus the numbers a recipe returned in a dict."""
    metrics: dict[str, float] = {}
    for metric in state.metrics:
        number = _number(getattr(metric, "value", None))
        if number is not None:
            metrics[metric.name] = number
    if isinstance(returned, Mapping):
        for key, value in returned.items():
            number = _number(value)
            if not isinstance(key, str) or number is None:
                raise TypeError(
                    f"recipe {node.recipe!r} returned {{{key!r}: {value!r}}}; a recipe returns None or a dict of "
                    "numbers by name, which are recorded with the node's metrics"
                )
            metrics[key] = number
    elif returned is not None and not isinstance(returned, State):
        raise TypeError(
            f"recipe {node.recipe!r} returned {type(returned).__name__}; a recipe changes the state it is given "
            "and returns None (or a dict of numbers to record with the node's metrics)"
        )
    return metrics


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    numel = getattr(value, "numel", None)
    if callable(numel) and numel() == 1 and getattr(value, "dtype", None) is not None:
        try:
            return float(value.item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def _close_writers(state: State) -> None:
    for writer in state.writers:
        close = getattr(writer, "close", None)
        if callable(close):
            close()


def _discarding_writer(run: str) -> Any:
    from statefire.features.tensorboard import _Discard

    return _Discard()
