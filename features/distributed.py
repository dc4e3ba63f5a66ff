"""Distributed training: the process group, the main process, decisions taken together, `auto_*` helpers.

statefire needs nothing from the user beyond an initialized `torch.distributed`
process group (torchrun, `mp.spawn`, ignite's `idist.Parallel`): metrics
combine every process's data, samplers are told the epoch, stopping handlers
decide together, checkpoints hold every process's RNG states, and only the
first process writes TensorBoard events and checkpoints. The process group is
looked up in `sys.modules`, so importing this module imports no torch; the
`auto_*` helpers import torch and ignite when called.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import torch

__all__ = [
    "process_group",
    "is_main_process",
    "process_rank",
    "any_process",
    "auto_model",
    "auto_optim",
    "auto_dataloader",
]


def process_group() -> Any:
    """`torch.distributed` when a process group of several processes is running, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return dist


def is_main_process() -> bool:
    """True in a single process, and in the process of rank 0 of a process group."""
    group = process_group()
    return group is None or group.get_rank() == 0


def process_rank() -> tuple[int, int]:
    """`(rank, world size)` of this process: `(0, 1)` without a process group of several processes."""
    group = process_group()
    if group is None:
        return 0, 1
    return group.get_rank(), group.get_world_size()


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on at least one: a decision taken together.

    Every process of the group must call it at the same point (it is a
    collective all-reduce); in a single process it returns `flag` and
    communicates nothing.

    Example:
        >>> from statefire.features.distributed import any_process
        >>> any_process(False), any_process(True)   # one process: its own decision
        (False, True)
    """
    group = process_group()
    if group is None:
        return bool(flag)
    return _any_over(group, flag)


def _any_over(dist: Any, flag: bool) -> bool:
    """One all-reduce (MAX) of a one-element tensor, on the device the backend needs."""
    import torch

    vote = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_collective_device(dist))
    dist.all_reduce(vote, op=dist.ReduceOp.MAX)
    return bool(vote.item())


def _collective_device(dist: Any) -> Any:
    """nccl communicates only CUDA tensors (on this process's current device); the other backends take CPU ones."""
    import torch

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- ignite's auto_* helpers, registering what they return as components -------------------------


def auto_model(
    model: torch.nn.Module, *, sync_bn: bool = False, name: str | None = None, **kwargs: Any
) -> torch.nn.Module:
    """`ignite.distributed.auto_model`, with the result registered as a `Model` component.

    The model goes to this process's device and, with several processes, is
    wrapped in `DistributedDataParallel` (any backend ignite supports: gloo,
    nccl, xla, horovod). The returned module is what to train with; it is
    registered in the current State as a `Model` (a component already
    wrapping it, or the module passed in, is reused), so pipelines given the
    returned module share it and checkpoints hold its weights. A wrapped
    model's checkpoint holds the inner module's weights, without the
    `module.` prefix, so it loads with any number of processes.

    Args:
        model: the `torch.nn.Module` to adapt.
        sync_bn: convert batch norm layers to `SyncBatchNorm` (native backends).
        name: the name of a new component; default: the class name of `model`, lower case.
        **kwargs: passed to `DistributedDataParallel` (or `DataParallel`).

    Returns:
        The module to train with (the same object in a single CPU process).

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import auto_model
        >>> with State() as s:
        ...     net = torch.nn.Linear(4, 2)
        ...     model = auto_model(net)        # one process: the module itself, on idist.device()
        ...     print(model is net, s.linear.module is model)
        True True
    """
    import torch
    from ignite import distributed as idist

    from .components import Model

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"auto_model adapts a torch.nn.Module, got {type(model).__name__}: {model!r}")
    adapted = idist.auto_model(model, sync_bn=sync_bn, **kwargs)
    _register(Model, "module", model, adapted, name)
    return adapted


def auto_optim(optimizer: torch.optim.Optimizer, *, name: str | None = None, **kwargs: Any) -> torch.optim.Optimizer:
    """`ignite.distributed.auto_optim`, with the result registered as an `Optimizer` component.

    Native torch backends (gloo, nccl) need nothing: the optimizer comes back
    unchanged. With horovod it is wrapped in its `DistributedOptimizer` and
    its state broadcast from the first process; on XLA its `step` goes through
    `xm.optimizer_step`. A component already wrapping it is reused.

    Args:
        optimizer: a `torch.optim.Optimizer`.
        name: the name of a new component; default: the optimizer's class name, lower case.
        **kwargs: passed to horovod's `DistributedOptimizer`.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import auto_optim
        >>> with State() as s:
        ...     sgd = auto_optim(torch.optim.SGD(torch.nn.Linear(4, 2).parameters(), lr=0.1))
        ...     print(s.sgd.lr, s.sgd.optimizer is sgd)
        0.1 True
    """
    import torch
    from ignite import distributed as idist

    from .components import Optimizer

    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"auto_optim adapts a torch.optim.Optimizer, got {type(optimizer).__name__}: {optimizer!r}"
        )
    adapted = idist.auto_optim(optimizer, **kwargs)
    _register(Optimizer, "optimizer", optimizer, adapted, name)
    return adapted


def auto_dataloader(dataset: torch.utils.data.Dataset, **kwargs: Any) -> torch.utils.data.DataLoader:
    """`ignite.distributed.auto_dataloader`: a `DataLoader` that shards `dataset` over the processes.

    With several processes, the loader gets a `DistributedSampler` (shuffled
    when `shuffle=True`, the default), and `batch_size` and `num_workers`,
    given for the whole job, are divided by the number of processes; in one
    process it is a plain `DataLoader(dataset, **kwargs)`. Engines call the
    sampler's `set_epoch` before every epoch, from their counters, so every
    epoch is shuffled anew and a resume draws the same order.

    Args:
        dataset: a `torch.utils.data.Dataset`.
        **kwargs: `DataLoader` arguments (`batch_size` is the global batch size).

    Example:
        >>> import torch
        >>> from statefire.features import auto_dataloader
        >>> data = torch.utils.data.TensorDataset(torch.arange(10.0))
        >>> loader = auto_dataloader(data, batch_size=4)    # one process: a plain DataLoader
        >>> [len(batch) for (batch,) in loader]
        [4, 4, 2]
    """
    import torch
    from ignite import distributed as idist

    if not isinstance(dataset, (torch.utils.data.Dataset, torch.utils.data.IterableDataset)):
        raise TypeError(
            f"auto_dataloader takes a torch.utils.data.Dataset (e.g. a TensorDataset), got "
            f"{type(dataset).__name__}: {dataset!r}"
        )
    # ignite returns a DataLoader except on XLA (TPU), where its device loader wraps one.
    return cast("torch.utils.data.DataLoader[Any]", idist.auto_dataloader(dataset, **kwargs))


def _register(cls: Any, attribute: str, given: Any, adapted: Any, name: str | None) -> Any:
    """The `cls` component for `adapted`: one wrapping it or `given` is reused (and made to wrap `adapted`)."""
    from statefire.frame import State

    state = State.current()
    for wrapped in (adapted, given):
        for feature in state.components:
            if isinstance(feature, cls) and getattr(feature, attribute) is wrapped:
                setattr(feature, attribute, adapted)  # training goes through the adapted object
                return feature
    if name is None:
        name = state.free_name(type(given).__name__.lower())
    return cls(adapted, name=name)
