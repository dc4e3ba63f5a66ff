"""Torch components as peers: models and optimizers in `state.components`."""

from __future__ import annotations

from typing import Any

import torch

from statefire.frame import Feature, State, StateObject

__all__ = ["Model", "Optimizer"]


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

    def __init__(self, module: torch.nn.Module, *, name: str | None = None) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"Model wraps a torch.nn.Module, got {type(module).__name__}: {module!r}")
        super().__init__(name=name or type(module).__name__.lower())
        self.module = module

    @classmethod
    def of(cls, module: torch.nn.Module, *, state: State | None = None) -> Model:
        """The component wrapping `module` in the state, created if there is none."""
        return _component_of(cls, "module", module, state)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "module": _unwrapped(self.module).state_dict()}

    def _load(self, state_dict: dict[str, Any]) -> None:
        super()._load(state_dict)
        if "module" in state_dict:
            _unwrapped(self.module).load_state_dict(state_dict["module"])

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.module.parameters())
        return f"<Model {self.path}: {type(self.module).__name__}, {n} parameters>"


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

    def __new__(cls, optimizer: Any = None, *, name: str | None = None) -> Any:
        if cls is Optimizer and isinstance(optimizer, torch.optim.Optimizer):
            group = optimizer.param_groups[0]
            namespace: dict[str, Any] = {
                key: _GroupValue(value, persist=False, doc=f"param group {key!r}")
                for key, value in group.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "params"
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
        return {name: getattr(self, name) for name in type(self)._sf_objects}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def _load(self, state_dict: dict[str, Any]) -> None:
        super()._load(state_dict)
        if "optimizer" in state_dict:
            self.optimizer.load_state_dict(state_dict["optimizer"])
            for name in type(self)._sf_objects:
                getattr(self, name)  # refresh the stored values from the restored groups


def _component_of(cls: type[Any], attribute: str, wrapped: Any, state: State | None) -> Any:
    """The `cls` component whose `attribute` is `wrapped`, or a new one under a free name."""
    state = state or State.current()
    for feature in state.components:
        if isinstance(feature, cls) and getattr(feature, attribute) is wrapped:
            return feature
    return cls(wrapped, name=state.free_name(type(wrapped).__name__.lower()))
