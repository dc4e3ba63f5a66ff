"""Torch components as peers: models, optimizers and any object in `state.components`."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import keyword
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from typing import Any, ClassVar

import torch

from statefire.frame import (
    Feature,
    NameConflictError,
    Param,
    State,
    StateObject,
    UnknownNameError,
    snake_case,
    summarize,
)

__all__ = ["Model", "Optimizer", "Component"]


class Model(Feature):
    """A `torch.nn.Module` in the state; its weights are part of `state.state_dict()`.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import Model
        >>> with State() as s:
        ...     model = Model(torch.nn.Linear(3, 1))
        ...     print(s.linear.module, sorted(model.state_dict()["module"]))
        Linear(in_features=3, out_features=1, bias=True) ['bias', 'weight']
    """

    category = "components"
    extra_state: ClassVar[dict[str, str]] = {"module": "_bare_module"}

    def __init__(self, module: torch.nn.Module, *, name: str | None = None) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"Model wraps a torch.nn.Module, got {type(module).__name__}: {module!r}")
        super().__init__(name=name or type(module).__name__.lower())
        self.module = module

    @classmethod
    def of(cls, module: torch.nn.Module, *, state: State | None = None) -> Model:
        """The component wrapping `module` in the state, created if there is none."""
        return _component_of(cls, "module", module, state)

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """What in `state_dict` does not fit the module: missing or extra entries, other shapes."""
        saved = state_dict.get("module")
        where = f"{self.path}.module"
        if saved is None:
            return []
        if not isinstance(saved, dict):
            return [f"{where}: expected the module's state dict, found {type(saved).__name__}"]
        own = _unwrapped(self.module).state_dict()
        problems = [f"{where}.{key}: missing (the model has it)" for key in own if key not in saved]
        problems += [f"{where}.{key}: not in the model" for key in saved if key not in own]
        for key, tensor in own.items():
            value = saved.get(key)
            if key not in saved or not isinstance(tensor, torch.Tensor):
                continue
            if not isinstance(value, torch.Tensor):
                problems.append(f"{where}.{key}: expected a tensor, found {type(value).__name__}")
            elif value.shape != tensor.shape:
                problems.append(
                    f"{where}.{key}: expected shape {tuple(tensor.shape)} (the model's), found {tuple(value.shape)}"
                )
        return problems

    @property
    def _bare_module(self) -> torch.nn.Module:
        """The module without its DDP/DataParallel wrapper: its weights are saved under `module`."""
        return _unwrapped(self.module)

    def shown_values(self) -> dict[str, Any]:
        """What `print(state)` shows of a model: its parameter count (it has no state objects)."""
        return {**super().shown_values(), "n_parameters": sum(p.numel() for p in self.module.parameters())}

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.module.parameters())
        return f"<Model {self.path}: {type(self.module).__name__}, {n} parameters>"


def _group_scalar(value: Any) -> bool:
    """A param-group value shown and set as a state object: a number, or a tuple of numbers (Adam's betas)."""
    if isinstance(value, tuple):
        return bool(value) and all(_group_scalar(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a (Distributed)DataParallel wrapper: its weights without the `module.` prefix,
    so a checkpoint moves between one process and several."""
    if isinstance(module, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        return module.module
    return module


class _GroupValue(StateObject):
    """A scalar of the optimizer's param groups: reads the first group, sets every group.

    Reads are live, so a torch scheduler that writes `param_groups` directly is
    seen; a set changes the optimizer, then fires like any state object.
    """

    __slots__ = ()

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.optimizer.param_groups[0][self.name]
        obj.__dict__[self.name] = value  # keep the debugger view current
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        for group in obj.optimizer.param_groups:
            group[self.name] = value
        super().__set__(obj, value)


class Optimizer(Feature):
    """A `torch.optim.Optimizer` whose scalar param-group values are state objects.

    `lr`, `momentum`, `weight_decay`, ... (whatever scalars the first param
    group has): reading gives the first group's value, setting sets every
    group and fires. The torch state dict is part of `state.state_dict()`.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import Optimizer
        >>> with State() as s:
        ...     sgd = Optimizer(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1))
        ...     handle = sgd.lr_ref.attach(lambda lr: print("lr is now", lr))
        ...     s.sgd.lr = 0.01
        ...     print(sgd.optimizer.param_groups[0]["lr"])
        lr is now 0.01
        0.01
    """

    category = "components"
    extra_state: ClassVar[dict[str, str]] = {"optimizer": "optimizer"}

    def __new__(cls, optimizer: Any = None, *, name: str | None = None) -> Any:
        if cls is Optimizer and isinstance(optimizer, torch.optim.Optimizer):
            group = optimizer.param_groups[0]
            namespace: dict[str, Any] = {
                key: _GroupValue(value, persist=False, doc=f"param group {key!r}")
                for key, value in group.items()
                if key != "params" and _group_scalar(value)
            }
            namespace["__module__"] = __name__
            namespace["__qualname__"] = "Optimizer"
            cls = type("Optimizer", (Optimizer,), namespace)
        return super().__new__(cls)

    def __init__(self, optimizer: torch.optim.Optimizer, *, name: str | None = None) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"Optimizer wraps a torch.optim.Optimizer, got {type(optimizer).__name__}: {optimizer!r}"
            )
        self.optimizer = optimizer
        super().__init__(name=name or type(optimizer).__name__.lower())

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer, *, state: State | None = None) -> Optimizer:
        """The component wrapping `optimizer` in the state, created if there is none."""
        return _component_of(cls, "optimizer", optimizer, state)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).state_objects()}

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """What in `state_dict` does not fit the optimizer: another number of groups or of parameters."""
        saved = state_dict.get("optimizer")
        where = f"{self.path}.optimizer"
        if saved is None:
            return []
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if not isinstance(groups, list) or not isinstance(saved.get("state"), dict):
            return [f"{where}: expected a torch optimizer state dict (state, param_groups), found {saved!r:.60}"]
        own = self.optimizer.param_groups
        if len(groups) != len(own):
            return [f"{where}.param_groups: expected {len(own)} groups (the optimizer's), found {len(groups)}"]
        problems = []
        for index, (group, mine) in enumerate(zip(groups, own, strict=True)):
            params = group.get("params") if isinstance(group, dict) else None
            if not isinstance(params, list) or len(params) != len(mine["params"]):
                found = len(params) if isinstance(params, list) else type(params).__name__
                problems.append(
                    f"{where}.param_groups[{index}].params: expected {len(mine['params'])} parameters, found {found}"
                )
        return problems

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        super().load_state_dict(state_dict, strict)
        for name in type(self).state_objects():
            getattr(self, name)  # refresh the stored values from the restored groups


class _Attribute(Param):
    """An attribute of an outside object, seen as a state object of a `Component`.

    The path is resolved once, at construction, to the object holding the
    attribute (`holder`), so a read is one `getattr` and a set one `setattr`
    more than a plain state object's. Reads are live: a write made behind
    the component's back (by the object itself, a library) is seen; the
    instance dict keeps the last value seen, for debuggers.
    """

    __slots__ = ("holder", "attribute", "path")

    def __init__(self, holder: Any, attribute: Any, path: str, doc: str) -> None:
        super().__init__(None, doc=doc)
        self.holder = holder
        self.attribute = attribute
        self.path = path

    def initial(self) -> Any:
        return getattr(self.holder, self.attribute)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = getattr(self.holder, self.attribute)
        obj.__dict__[self.name] = value  # keep the debugger view current
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        try:
            setattr(self.holder, self.attribute, value)
        except AttributeError as error:  # e.g. a property that refuses this value now
            raise AttributeError(
                f"cannot set {obj.path}.{self.name}: setting {type(self.holder).__name__}.{self.attribute} "
                f"(path {self.path!r}) to {value!r} failed: {error}"
            ) from error
        # StateObject.__set__, written out (a call to it would add a Python call to every set),
        # reading the fire functions as it does: `fire_functions` is the same mapping, behind a property.
        obj.__dict__[self.name] = value
        if self.observed:
            fire = obj._sf.get(self.name)
            if fire is not None:
                fire(value)


class _Item(_Attribute):
    """An item of a list or dict inside an outside object (the last part of a path is an index or key)."""

    __slots__ = ()

    def initial(self) -> Any:
        return self.holder[self.attribute]

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self.holder[self.attribute]
        obj.__dict__[self.name] = value
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        self.holder[self.attribute] = value
        obj.__dict__[self.name] = value
        if self.observed:
            fire = obj.fire_functions.get(self.name)
            if fire is not None:
                fire(value)


class Component(Feature):
    """Chosen attributes of any object as state objects: observable, chartable, settable, saved.

    A dropout's `p`, a loss's label smoothing, a data set's augmentation
    strength, a scheduler's `gamma`, an EMA decay: each becomes a `Param` of
    the component, so refs, filters, `run_on`, charts, the data-flow graph
    and `state.config()` (as `components.<name>.<attr>`) see it.

    A read is live: it reads the object's attribute, so a write made
    elsewhere is seen. A set writes the attribute, then fires. The values
    are part of `state.state_dict()` and are restored on load; if the
    object has its own `state_dict()`/`load_state_dict()` (a torch module,
    a scheduler, your own class), that is saved and restored too, under the
    key `obj` — unless a `Model` or `Optimizer` in the same State already
    wraps the object and saves it.

    Args:
        obj: the object, of any class.
        attrs: state-object names mapped to attribute paths on `obj`,
            dotted, through attributes, module children (`"1.p"` is the
            `p` of child `1` of an `nn.Sequential`), list items by index and
            dict items by key: `{"dropout_p": "1.p", "smoothing":
            "label_smoothing"}`. A list of paths names each by its last
            part: `["label_smoothing"]`. Paths are resolved once, here.
        name: the feature's name; by default the object's class in
            snake_case (`CrossEntropyLoss` -> `cross_entropy_loss`), the
            rule for every feature name. (`Model` and `Optimizer` keep
            the class name in lower case, `sgd`, `linear`.)

    Raises:
        UnknownNameError: (an `AttributeError`) a path that does not lead to
            an attribute, naming the path, the part that failed and the
            close names.
        TypeError: `attrs` of the wrong type, or a path that lands on a
            method, a module or a read-only property.
        NameConflictError: (a `ValueError`) two paths with the same last
            part in a list, or a name that is not an identifier or is taken
            by the feature itself.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import Component
        >>> with State() as s:
        ...     loss = Component(torch.nn.CrossEntropyLoss(), {"smoothing": "label_smoothing"})
        ...     handle = loss.smoothing_ref.attach(lambda v: print("smoothing is now", v))
        ...     s.cross_entropy_loss.smoothing = 0.1
        ...     print(loss.obj.label_smoothing, s.config())
        smoothing is now 0.1
        0.1 {'components.cross_entropy_loss.smoothing': 0.1}
    """

    category = "components"

    obj: Any
    paths: dict[str, str]

    def __new__(cls, obj: Any = None, attrs: Any = None, *, name: str | None = None) -> Any:
        # Each component gets a class of its own holding its attributes' state
        # objects (as Optimizer does); a subclass of Component gets one too.
        if not cls.__dict__.get("_sf_per_instance", False):
            where = f"{cls.__name__} of {type(obj).__name__}"
            if isinstance(obj, Feature):
                raise TypeError(
                    f"{where}: {obj.path} is a feature already; its state objects have refs "
                    f"({', '.join(sorted(type(obj).state_objects())) or 'none'}), use them directly"
                )
            paths = _named_paths(attrs, where, cls)
            if not paths and not _has_own_state(obj):
                raise ValueError(
                    f"{where}: attrs is empty and {type(obj).__name__} has no state_dict()/load_state_dict(), "
                    "so the component would expose and save nothing; name at least one attribute path"
                )
            namespace: dict[str, Any] = {}
            for object_name, path in paths.items():
                holder, key, is_item = _resolve(obj, path, where)
                kind = _Item if is_item else _Attribute
                namespace[object_name] = kind(holder, key, path, f"{type(obj).__name__} attribute {path!r}")
            namespace["__module__"] = cls.__module__
            namespace["__qualname__"] = cls.__qualname__
            namespace["_sf_per_instance"] = True
            cls = type(cls.__name__, (cls,), namespace)
        return super().__new__(cls)

    def __init__(self, obj: Any, attrs: Mapping[str, str] | Iterable[str], *, name: str | None = None) -> None:
        self.obj = obj
        self.paths = {n: o.path for n, o in type(self).state_objects().items() if isinstance(o, _Attribute)}
        super().__init__(name=name or snake_case(type(obj).__name__))

    def values(self) -> dict[str, Any]:
        """Every exposed attribute's current value (read from the object), by name."""
        return {name: getattr(self, name) for name in type(self).state_objects()}

    def state_dict(self) -> dict[str, Any]:
        """The attributes' current values, plus the object's own state dict under `obj`.

        A numpy scalar is saved as a Python number (a checkpoint loads only
        plain data); a load gives the attribute its numpy type back.
        """
        state_dict = {n: _plain(getattr(self, n)) for n, o in type(self).state_objects().items() if o.persist}
        if self._saves_object():
            state_dict["obj"] = self.obj.state_dict()
        return state_dict

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        # The object's own state first: the exposed values, saved at the same time, win.
        if "obj" in state_dict and _has_own_state(self.obj):
            self.obj.load_state_dict(state_dict["obj"])
        values = dict(state_dict)
        for name, value in state_dict.items():
            if name in type(self).state_objects():
                current = getattr(self, name)
                if _is_numpy_scalar(current) and not _is_numpy_scalar(value):
                    values[name] = type(current)(value)  # exact: the number was saved from this type
        super()._load(values)

    def _saves_object(self) -> bool:
        """The object has a state dict and no Model or Optimizer of this State saves it already."""
        if not _has_own_state(self.obj):
            return False
        state = self.state
        if state is None:
            return True
        obj = self.obj
        for feature in state.components:
            if (isinstance(feature, Model) and feature.module is obj) or (
                isinstance(feature, Optimizer) and feature.optimizer is obj
            ):
                return False
        return True

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={summarize(v)}" for n, v in self.values().items())
        return f"<{type(self).__name__} {self.path} of {type(self.obj).__name__}: {values}>"


# Names a state object of a Component cannot take: the feature's own attributes.
_RESERVED = frozenset({"obj", "paths", "name", "state", "path", "category"})


def _is_numpy_scalar(value: Any) -> bool:
    return type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python number: torch's safe loading refuses numpy objects."""
    return value.item() if _is_numpy_scalar(value) else value


def _has_own_state(obj: Any) -> bool:
    return (
        not isinstance(obj, type)
        and callable(getattr(obj, "state_dict", None))
        and callable(getattr(obj, "load_state_dict", None))
    )


def _named_paths(attrs: Any, where: str, cls: type) -> dict[str, str]:
    """`attrs` as `{state-object name: path}`, every name and path checked."""
    if isinstance(attrs, Mapping):
        pairs = list(attrs.items())
        for name, path in pairs:
            if not isinstance(name, str):
                raise TypeError(f"{where}: the names in attrs must be str, got {name!r} for path {path!r}")
            _check_path(path, where)
        from_list = False
    elif isinstance(attrs, (str, bytes)):
        raise TypeError(
            f"{where}: attrs must be a dict {{name: path}} or a list of paths, got the str {attrs!r}; "
            f"write [{attrs!r}]"
        )
    elif isinstance(attrs, Iterable):
        pairs = []
        for path in attrs:
            _check_path(path, where)
            pairs.append((path.rsplit(".", 1)[-1], path))
        from_list = True
        seen: dict[str, list[str]] = {}
        for name, path in pairs:
            seen.setdefault(name, []).append(path)
        twice = {name: paths for name, paths in seen.items() if len(paths) > 1}
        if twice:
            name, paths = next(iter(twice.items()))
            raise NameConflictError(
                f"{where}: the paths {', '.join(map(repr, paths))} all end in {name!r}, so a list cannot "
                f"name them; give each a name with a dict, e.g. "
                + "{" + ", ".join(f"{name + '_' + str(i)!r}: {p!r}" for i, p in enumerate(paths, 1)) + "}"
            )
    else:
        raise TypeError(
            f"{where}: attrs must be a dict {{name: path}} or a list of paths, "
            f"got {type(attrs).__name__}: {attrs!r}"
        )
    reserved = _RESERVED | {n for n in dir(cls) if not n.startswith("__")}
    for name, path in pairs:
        problem = None
        if not name.isidentifier() or keyword.iskeyword(name):
            problem = "is not a Python identifier"
        elif name.startswith("_"):
            problem = "starts with '_'"
        elif name.endswith("_ref"):
            problem = "ends in '_ref' (the suffix of every state object's ref)"
        elif name in reserved:
            problem = f"is an attribute of {cls.__name__} itself"
        if problem:
            hint = (
                f"give it another name in a dict, e.g. {{'my_name': {path!r}}}" if from_list else "choose another name"
            )
            raise NameConflictError(f"{where}: the name {name!r} of path {path!r} {problem}; {hint}")
    return dict(pairs)


def _check_path(path: Any, where: str) -> None:
    if not isinstance(path, str):
        raise TypeError(
            f"{where}: an attribute path must be a str such as 'label_smoothing' or '1.p', "
            f"got {type(path).__name__}: {path!r}"
        )
    if not path or not all(path.split(".")):
        raise ValueError(
            f"{where}: attribute path {path!r} has an empty part; write names joined by single dots, like '1.p'"
        )


def _resolve(obj: Any, path: str, where: str) -> tuple[Any, Any, bool]:
    """`(holder, key, is_item)`: the object owning the path's last part, and that part.

    The last part is an attribute of the holder, or else (`is_item`) an
    index or key of a list or dict.
    """
    parts = path.split(".")
    current = obj
    for depth, part in enumerate(parts[:-1]):
        current, _ = _child(current, part, path, ".".join(parts[:depth]), where, values_only=False)
        if inspect.isroutine(current):
            raise TypeError(
                f"{where}: attribute path {path!r} goes through a method or function at {part!r} "
                f"({'.'.join(parts[:depth + 1])}); a path follows attributes, children and items"
            )
    last = parts[-1]
    walked = ".".join(parts[:-1])
    value, index = _child(current, last, path, walked, where, values_only=True)
    at = f"{type(current).__name__}.{last}" if index is None else f"{type(current).__name__}[{index!r}]"
    if inspect.isroutine(value):
        raise TypeError(
            f"{where}: attribute path {path!r} lands on a method or function ({at}); a component exposes "
            f"values: name an attribute holding one ({', '.join(_value_names(current)[:5]) or 'none found'})"
        )
    if isinstance(value, torch.nn.Module):
        raise TypeError(
            f"{where}: attribute path {path!r} lands on a module ({type(value).__name__}); name one of its "
            f"attributes, e.g. {path + '.' + (_value_names(value) or ['training'])[0]!r}, or wrap the module with Model"
        )
    if index is not None:
        if not isinstance(current, (MutableSequence, MutableMapping)):
            raise TypeError(
                f"{where}: attribute path {path!r} is an item of a {type(current).__name__} ({at}), "
                "which cannot be changed; name an attribute or an item of a list or dict"
            )
        return current, index, True
    static = _static(current, last)
    if isinstance(static, property) and static.fset is None:
        raise TypeError(
            f"{where}: attribute path {path!r} is a read-only property ({at}) and cannot be set; "
            "name the attribute it reads"
        )
    if dataclasses.is_dataclass(current) and current.__dataclass_params__.frozen:  # type: ignore[union-attr]
        raise TypeError(
            f"{where}: attribute path {path!r} belongs to a frozen dataclass ({type(current).__name__}), "
            "whose attributes cannot be set"
        )
    return current, last, False


def _child(current: Any, part: str, path: str, walked: str, where: str, *, values_only: bool) -> tuple[Any, Any]:
    """One step down a path: `(value, None)` for an attribute (a module's child too),
    `(value, index or key)` for an item of a list or dict."""
    try:
        return getattr(current, part), None
    except AttributeError:
        pass
    if isinstance(current, Sequence) and not isinstance(current, (str, bytes)):
        try:
            index = int(part)
            return current[index], index
        except (ValueError, IndexError):
            pass
    elif isinstance(current, Mapping) and part in current:
        return current[part], part
    raise _unknown(current, part, path, walked, where, values_only=values_only)


def _unknown(current: Any, part: str, path: str, walked: str, where: str, *, values_only: bool) -> UnknownNameError:
    at = f"{walked!r} ({type(current).__name__})" if walked else f"the {type(current).__name__} itself"
    names = _value_names(current)
    candidates = [n for n in dir(current) if not n.startswith("_")] + names
    if values_only:
        candidates = [n for n in candidates if not inspect.isroutine(_static(current, n))]
    close = difflib.get_close_matches(part, sorted(set(candidates)), n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(map(repr, close)) + "?"
    else:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        hint = f"it has: {shown}." if names else "it has no attributes holding values."
    return UnknownNameError(
        f"{where}: attribute path {path!r} fails at {part!r}: {at} has no attribute, child or item "
        f"{part!r}; {hint}"
    )


def _value_names(value: Any) -> list[str]:
    """What a path may go on with: children, indices and keys first, then attributes holding values."""
    names: list[str] = []
    if isinstance(value, torch.nn.Module):
        names += [n for n, _ in value.named_children()]
        names += [n for n, _ in value.named_parameters(recurse=False)]
        names += [n for n, _ in value.named_buffers(recurse=False)]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        names += [str(i) for i in range(len(value))]
    elif isinstance(value, Mapping):
        names += [k for k in value if isinstance(k, str)]
    attributes = vars(value) if hasattr(value, "__dict__") else {}
    names += [n for n, v in attributes.items() if not n.startswith("_") and not inspect.isroutine(v)]
    names += [
        n for n in dir(type(value))
        if not n.startswith("_") and isinstance(getattr(type(value), n, None), property)
    ]  # fmt: skip
    # `training` is on every module and rarely what a path is after: name it last.
    unique = list(dict.fromkeys(names))
    return [n for n in unique if n != "training"] + [n for n in unique if n == "training"]


def _static(value: Any, name: str) -> Any:
    try:
        return inspect.getattr_static(value, name)
    except AttributeError:
        return None


def _component_of(cls: type[Any], attribute: str, wrapped: Any, state: State | None) -> Any:
    """The `cls` component whose `attribute` is `wrapped`, or a new one under a free name."""
    state = state or State.current()
    for feature in state.components:
        if isinstance(feature, cls) and getattr(feature, attribute) is wrapped:
            return feature
    return cls(wrapped, name=state.free_name(type(wrapped).__name__.lower()))
