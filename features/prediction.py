"""`predict`: a model's outputs over a loader, as Lightning's `trainer.predict`, with no side effect."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .engine import _order_generator
from .supervised import _amp_context, _forward_context

__all__ = ["predict"]


def predict(
    model: Any,
    data: Iterable[Any],
    *,
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    prepare_batch: Callable[..., Any] | None = None,
    amp_mode: str | None = None,
) -> list[Any]:
    """The outputs of `model` over `data`, one per batch, in order: `torch.cat(predict(model, loader))`.

    A plain loop, not an engine: nothing is registered in the State, no
    counter moves, no metric or handler sees the batches. The model runs in
    eval mode under `torch.no_grad()`, and every submodule gets back the
    mode it had. Iterating a loader draws from torch's global RNG (and from
    the loader's own generator when it has one); both are put back, so a
    prediction between epochs does not change the training that follows.

    Args:
        model: a `torch.nn.Module` (or a `Model` component).
        data: batches of `x` alone (a tensor), or of `(x, y)` / `(x,)`
            (a tuple or list: its first element is the input), e.g. a
            `DataLoader` of a `TensorDataset`.
        device: where the inputs go (the model is not moved).
        non_blocking: passed to `tensor.to`.
        prepare_batch: `fn(batch, device, non_blocking) -> (x, y)` for other
            layouts, as for `SupervisedTrainer`; `y` is ignored.
        amp_mode: `"amp"` runs the forward pass under `torch.autocast`.

    Returns:
        The list of `model(x)` for each batch (as Lightning's `trainer.predict`).

    Example:
        >>> import torch
        >>> from statefire.features import predict
        >>> model = torch.nn.Linear(3, 2)
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(10, 3)), batch_size=4)
        >>> outputs = predict(model, loader)
        >>> [tuple(o.shape) for o in outputs], model.training
        ([(4, 2), (4, 2), (2, 2)], True)
    """
    module = getattr(model, "module", model)
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"predict needs a torch.nn.Module (or a Model component) as model, got {model!r}")
    if prepare_batch is not None and not callable(prepare_batch):
        raise TypeError(
            f"prepare_batch of predict must be callable as fn(batch, device, non_blocking), got {prepare_batch!r}"
        )
    if not isinstance(data, Iterable):  # not iter(data): a DataLoader's iterator draws from the RNG
        raise TypeError(f"data of predict must be an iterable of batches (e.g. a DataLoader), got {data!r}")
    autocast = _amp_context(amp_mode, "predict")
    modes = [(m, m.training) for m in module.modules()]  # submodules may differ (a frozen BatchNorm)
    torch_rng = torch.get_rng_state()
    generator = _order_generator(data)
    generator_state = None if generator is None else generator.get_state()
    outputs = []
    module.eval()
    try:
        with torch.no_grad():
            for index, batch in enumerate(data):
                if prepare_batch is None:
                    x = _input(batch, index)
                    if device is not None:
                        x = x.to(device, non_blocking=non_blocking)
                else:
                    x = prepare_batch(batch, device, non_blocking)[0]
                with _forward_context(autocast, device, module):
                    outputs.append(module(x))
    finally:
        for submodule, training in modes:
            submodule.training = training
        torch.set_rng_state(torch_rng)
        if generator is not None:
            generator.set_state(generator_state)
    return outputs


def _input(batch: Any, index: int) -> Any:
    """`x` of a batch: the batch itself if a tensor, else the first element of a tuple or list."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(
        f"predict takes batches of x (a tensor) or (x, y), but batch {index} is a {type(batch).__name__}; "
        "pass prepare_batch=fn(batch, device, non_blocking) -> (x, y) for other layouts"
    )
