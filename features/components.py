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
        return {**super().state_dict(), "module": self.module.state_dict()}

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """What in `state_dict` does not fit the module: missing or extra entries, other shapes."""
        saved = state_dict.get("module")
        where = f"{self.path}.module"
        if saved is None:
            return []
        if not isinstance(saved, dict):
            return [f"{where}: expected the module's state dict, found {type(saved).__name__}"]
        own = self.module.state_dict()
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

    def _load(self, state_dict: dict[str, Any]) -> None:
        super()._load(state_dict)
        if "module" in state_dict:
            self.module.load_state_dict(state_dict["module"])

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.module.parameters())
        return f"<Model {self.path}: {type(self.module).__name__}, {n} parameters>"


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
        for index, (group, mine) in enumerate(zip(groups, own)):
            params = group.get("params") if isinstance(group, dict) else None
            if not isinstance(params, list) or len(params) != len(mine["params"]):
                found = len(params) if isinstance(params, list) else type(params).__name__
                problems.append(
                    f"{where}.param_groups[{index}].params: expected {len(mine['params'])} parameters, found {found}"
                )
        return problems

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
