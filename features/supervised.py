"""The five-line path for supervised learning, built only from the public peers.

`SupervisedTrainer` and `SupervisedEvaluator` are engines whose `process` does
a standard training or evaluation step; they register the model and the
optimizer as components (reusing a component that already wraps the same
object) and create the requested metrics as peers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, cast

import torch

from statefire.frame import FilteredRef, Ref, check

from .components import Model, Optimizer
from .engine import Engine
from .metrics import Accuracy, Loss, Metric

__all__ = ["SupervisedTrainer", "SupervisedEvaluator", "prepare_batch"]


def prepare_batch(batch: Any, device: Any = None, non_blocking: bool = False) -> tuple[Any, Any]:
    """Split `(x, y)` and move both to `device` (ignite's default, for a pair)."""
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise TypeError(
            f"a supervised batch must be a pair (x, y), got {type(batch).__name__}; "
            "pass prepare_batch=fn(batch, device, non_blocking) -> (x, y) for other layouts"
        ) from None
    if device is not None:
        x = x.to(device, non_blocking=non_blocking)
        y = y.to(device, non_blocking=non_blocking)
    return x, y


_AMP_MODES = (None, "amp")


def _amp_context(amp_mode: str | None, who: str) -> Callable[[Any, torch.nn.Module], Any] | None:
    """What a step runs its forward pass in: `torch.autocast` for amp_mode="amp"; None without amp,
    so that a step calls the model directly (a no-op context is four Python calls per iteration)."""
    if amp_mode not in _AMP_MODES:
        hint = "; apex is not supported, torch's own autocast is" if amp_mode == "apex" else ""
        raise ValueError(f"amp_mode of {who} must be None or 'amp', got {amp_mode!r}{hint}")
    if amp_mode is None:
        return None
    return lambda device, module: torch.autocast(_device_type(device, module))


def _forward_context(autocast: Callable[[Any, torch.nn.Module], Any] | None, device: Any, module: Any) -> Any:
    """The context of a forward pass off the hot path: autocast with amp, else nothing."""
    return contextlib.nullcontext() if autocast is None else autocast(device, module)


def _device_type(device: Any, module: torch.nn.Module) -> str:
    """'cuda', 'cpu', ...: of `device` if given, else of the model's parameters."""
    if device is not None:
        return torch.device(device).type
    for parameter in module.parameters():
        return parameter.device.type
    return "cpu"


class _Supervised:
    """The attributes `_setup` gives a supervised trainer and evaluator, declared for type checkers."""

    name: str
    model: Model
    amp_mode: str | None
    device: Any
    non_blocking: bool
    prepare_batch: Callable[..., tuple[Any, Any]]
    output_transform: Any
    _autocast: Callable[[Any, torch.nn.Module], Any] | None


def _setup(
    engine: _Supervised,
    model: torch.nn.Module,
    device: Any,
    non_blocking: bool,
    prepare_batch: Callable[..., tuple[Any, Any]],
    output_transform: Any,
    amp_mode: str | None,
) -> None:
    """What a supervised trainer and evaluator share: the model component, the device, the step's helpers."""
    engine._autocast = _amp_context(amp_mode, f"engine {engine.name!r}")
    engine.amp_mode = amp_mode
    engine.model = Model.of(model)
    if device is not None:
        model.to(device)
    engine.device = device
    engine.non_blocking = non_blocking
    engine.prepare_batch = prepare_batch
    engine.output_transform = output_transform


class SupervisedTrainer(Engine, _Supervised):
    """An engine training `model` with `optimizer` on `loss_fn(model(x), y)`.

    Its `output` is the detached loss tensor (no `.item()` per iteration,
    which would sync a GPU every step) unless `output_transform(x, y, y_pred,
    loss)` says otherwise.

    Args:
        model: the `torch.nn.Module` to train (moved to `device` if given).
        optimizer: a `torch.optim.Optimizer` over the model's parameters.
        loss_fn: `loss_fn(y_pred, y) -> loss`, a scalar tensor.
        data: an iterable of `(x, y)` batches, e.g. a `DataLoader`.
        name: the engine's name.
        n_epochs: epochs per run.
        epoch_length: iterations per epoch, if not `len(data)`.
        device: where batches (and the model) go.
        non_blocking: passed to `tensor.to`.
        prepare_batch: `fn(batch, device, non_blocking) -> (x, y)`.
        output_transform: `fn(x, y, y_pred, loss) -> output`.
        gradient_accumulation_steps: step the optimizer every N iterations
            of an epoch, with the loss scaled by 1/N, and at the end of every
            epoch (as Lightning's `accumulate_grad_batches`): a window never
            spans an epoch end, so an end-of-epoch checkpoint holds no pending
            gradients. A checkpoint inside a window saves the gradients
            accumulated so far, so a resume from any position is exact.
        amp_mode: `"amp"` runs the forward pass and the loss under
            `torch.autocast` for the model's device (float16 on CUDA,
            bfloat16 on CPU), as ignite's `amp_mode="amp"`.
        scaler: `True` for a `torch.amp.GradScaler` (float16 gradients
            need one), or your own scaler; its state is in the state dict.
        clip_grad_norm: before each optimizer step, scale the gradients of
            the optimizer's parameters so that their total 2-norm is at most
            this (`torch.nn.utils.clip_grad_norm_`), as Lightning's
            `gradient_clip_val` with `gradient_clip_algorithm="norm"`.
        clip_grad_value: before each optimizer step, clamp every gradient
            to `[-value, value]` (`torch.nn.utils.clip_grad_value_`), as
            Lightning's `gradient_clip_algorithm="value"`. With a scaler,
            the gradients are unscaled first, so the limit applies to the
            true gradients. At most one of the two.
        run_on: a ref (or filtered ref) whose every firing runs this
            trainer, as `Engine(run_on=...)`: e.g. a second model's trainer
            following the first's `n_epoch_completed_ref`.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import SupervisedTrainer
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <...>
        >>> with State() as s:  # doctest: +ELLIPSIS
        ...     model = torch.nn.Linear(2, 1)
        ...     data = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(4)]
        ...     trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
        ...                                 torch.nn.functional.mse_loss, data, n_epochs=2)
        ...     _ = trainer.run()
        ...     print(trainer.n_iteration_completed, trainer.output.shape, list(s.components))
        8 torch.Size([]) [<Model components.linear: Linear, 3 parameters>, <Optimizer components.sgd: ...>]
    """

    extra_state: ClassVar[dict[str, str]] = {"scaler": "scaler", "pending_grads": "_grads_in_window"}

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        data: Iterable[Any],
        *,
        name: str = "trainer",
        n_epochs: int = 1,
        epoch_length: int | None = None,
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable[..., tuple[Any, Any]] = prepare_batch,
        output_transform: Callable[[Any, Any, Any, torch.Tensor], Any] | None = None,
        gradient_accumulation_steps: int = 1,
        amp_mode: str | None = None,
        scaler: bool | torch.amp.GradScaler = False,
        clip_grad_norm: float | None = None,
        clip_grad_value: float | None = None,
        run_on: Ref | FilteredRef | None = None,
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable as loss_fn(y_pred, y), got {loss_fn!r}")
        check.positive_int(gradient_accumulation_steps, "gradient_accumulation_steps", f"trainer {name!r}")
        if not isinstance(scaler, (bool, torch.amp.GradScaler)):
            raise TypeError(f"scaler of trainer {name!r} must be a bool or a torch.amp.GradScaler, got {scaler!r}")
        clip = _gradient_clipping(clip_grad_norm, clip_grad_value, name)
        super().__init__(
            name,
            cast(Callable[[Engine, Any], Any], SupervisedTrainer._step),
            data,
            n_epochs=n_epochs,
            epoch_length=epoch_length,
        )
        _setup(self, model, device, non_blocking, prepare_batch, output_transform, amp_mode)
        self.optimizer = Optimizer.of(optimizer)
        self.loss_fn = loss_fn
        self.gradient_accumulation_steps = gradient_accumulation_steps
        if scaler is True:
            scaler = torch.amp.GradScaler(_device_type(device, model))
        self.scaler: torch.amp.GradScaler | None = scaler or None
        self._clip = clip
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value
        self._learned_at = 0  # the n_iteration_started whose batch was last backpropagated (and stepped)
        # The last loss, graph and all, until the next iteration's forward pass has run: as long
        # as a hand-written loop's `loss` variable lives. Its backward pass freed the saved
        # tensors; what stays are the graph's nodes, among them the parameters' gradient
        # accumulators, which the next forward pass then reuses instead of building anew
        # (about 8000 instructions, some 4 us, of a 480 us quickstart iteration). Dropped
        # when a run ends.
        self._last_loss: torch.Tensor | None = None
        if run_on is not None:
            self.follow(run_on)

    def _step(self, batch: Any) -> Any:
        module = self.model.module
        if not module.training:
            # Every iteration, as ignite: a callback may have switched the model to eval
            # mode (sampling, a hand-made validation) and not back. One attribute read.
            module.train()
        steps = self.gradient_accumulation_steps
        position = self.epoch_iteration  # iterations of this epoch before this one
        number = self.n_iteration_started
        if self._learned_at == number:
            return self._retried_output(batch, module)
        if position % steps == 0:
            self.optimizer.optimizer.zero_grad()
        x, y = self.prepare_batch(batch, self.device, self.non_blocking)
        autocast = self._autocast
        if autocast is None:
            y_pred = module(x)
            loss = self.loss_fn(y_pred, y)
        else:
            with autocast(self.device, module):
                y_pred = module(x)
                loss = self.loss_fn(y_pred, y)
        # Objects are let go where a hand-written `loss = loss_fn(model(x), y)` lets them go: the
        # previous loss's graph now, the prediction now unless output_transform wants it. Held
        # through the backward pass and the step, they change how their buffers are allocated
        # (more malloc work per iteration than the loop's).
        output_transform = self.output_transform
        if output_transform is None:
            y_pred = None
        self._last_loss = loss
        scaled = loss / steps if steps > 1 else loss
        scaler = self.scaler
        if scaler is None:
            scaled.backward()
        else:
            scaler.scale(scaled).backward()
        if (position + 1) % steps == 0:
            self._optimizer_step()
        # This batch has been learned from: if what follows raises (output_transform), the
        # retry of this iteration must not backpropagate or step again.
        self._learned_at = number
        if output_transform is not None:
            return output_transform(x, y, y_pred, loss)
        return loss.detach()

    def run(self, *args: Any, **kwargs: Any) -> Engine:
        """`Engine.run`; the loss kept for the next iteration is let go when the run ends."""
        try:
            return super().run(*args, **kwargs)
        finally:
            self._last_loss = None  # between runs, no graph is held

    def _retried_output(self, batch: Any, module: torch.nn.Module) -> Any:
        """The output of an iteration retried after its step ran: the forward pass again, no learning."""
        x, y = self.prepare_batch(batch, self.device, self.non_blocking)
        with torch.no_grad(), _forward_context(self._autocast, self.device, module):
            y_pred = module(x)
            loss = self.loss_fn(y_pred, y)
        if self.output_transform is not None:
            return self.output_transform(x, y, y_pred, loss)
        return loss.detach()

    def _optimizer_step(self) -> None:
        scaler, optimizer = self.scaler, self.optimizer.optimizer
        if scaler is None:
            if self._clip is not None:
                self._clip(optimizer)
            optimizer.step()
        else:
            if self._clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients; step() then does not unscale again
                self._clip(optimizer)
            scaler.step(optimizer)
            scaler.update()

    def _end_epoch(self) -> None:
        """Step on the gradients of a partial window at the epoch end (Lightning's rule)."""
        if self.epoch_iteration % self.gradient_accumulation_steps:
            self._optimizer_step()

    def _parameters(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.optimizer.param_groups for p in group["params"]]

    def _pending_grads(self) -> list[torch.Tensor | None] | None:
        """The gradients accumulated in the current window, or None at a window boundary."""
        steps = self.gradient_accumulation_steps
        if steps == 1 or not self.in_epoch or self.epoch_iteration % steps == 0:
            return None
        return [None if p.grad is None else p.grad.detach().clone() for p in self._parameters()]

    @property
    def _grads_in_window(self) -> _PendingGrads | None:
        """The gradients of an unfinished accumulation window, saved under `pending_grads` (None: no windows)."""
        return _PendingGrads(self) if self.gradient_accumulation_steps > 1 else None

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """What in `state_dict` does not fit this trainer (checked before anything is restored)."""
        problems = super().check_state_dict(state_dict)
        grads = state_dict.get("pending_grads")
        if grads is None:
            return problems
        parameters = self._parameters()
        where = f"{self.path}.pending_grads"
        if not isinstance(grads, list) or len(grads) != len(parameters):
            count = len(grads) if isinstance(grads, list) else type(grads).__name__
            return [*problems, f"{where}: expected a list of {len(parameters)} gradients "
                               f"(one per optimized parameter), found {count}"]
        for index, (grad, parameter) in enumerate(zip(grads, parameters, strict=True)):
            if grad is not None and (not isinstance(grad, torch.Tensor) or grad.shape != parameter.shape):
                found = tuple(grad.shape) if isinstance(grad, torch.Tensor) else type(grad).__name__
                problems.append(f"{where}[{index}]: expected a tensor of shape {tuple(parameter.shape)}, found {found}")
        return problems

    def _abandon_run(self) -> None:
        super()._abandon_run()
        self._learned_at = 0  # a new run: its first batch is learned from whatever its number

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        super()._load(state_dict)
        self._learned_at = 0  # a restored position: the next batch was not learned from in this process


class _PendingGrads:
    """A trainer's gradients inside an accumulation window, as an object with a torch-style state dict."""

    __slots__ = ("trainer",)

    def __init__(self, trainer: SupervisedTrainer) -> None:
        self.trainer = trainer

    def state_dict(self) -> list[torch.Tensor | None] | None:
        return self.trainer._pending_grads()

    def load_state_dict(self, grads: list[torch.Tensor | None] | None) -> None:
        if grads is not None:
            # Inside an accumulation window: the next iterations add to these, as they would have.
            for parameter, grad in zip(self.trainer._parameters(), grads, strict=False):
                parameter.grad = None if grad is None else grad.to(parameter.device, parameter.dtype).clone()


def _gradient_clipping(
    clip_grad_norm: float | None, clip_grad_value: float | None, trainer: str
) -> Callable[[torch.optim.Optimizer], Any] | None:
    """What clips the gradients of an optimizer's parameters before its step, or None.

    The same calls as Lightning's `gradient_clip_val` (on the parameters of
    the optimizer's param groups), so the weights agree bit for bit.
    """
    for argument, value in (("clip_grad_norm", clip_grad_norm), ("clip_grad_value", clip_grad_value)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{argument} of trainer {trainer!r} must be a positive number or None, got {value!r}")
        if not value > 0:  # also refuses NaN
            raise ValueError(f"{argument} of trainer {trainer!r} must be a positive number or None, got {value!r}")
    if clip_grad_norm is not None and clip_grad_value is not None:
        raise ValueError(
            f"trainer {trainer!r} takes clip_grad_norm or clip_grad_value, not both (got {clip_grad_norm!r} "
            f"and {clip_grad_value!r}); as Lightning's gradient_clip_algorithm, choose one"
        )

    def parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    if clip_grad_norm is not None:
        return lambda optimizer: torch.nn.utils.clip_grad_norm_(parameters(optimizer), clip_grad_norm)
    if clip_grad_value is not None:
        return lambda optimizer: torch.nn.utils.clip_grad_value_(parameters(optimizer), clip_grad_value)
    return None


class SupervisedEvaluator(Engine, _Supervised):
    """An engine evaluating `model` on `data`; its output is `(y_pred, y)`.

    Runs under `torch.no_grad()` with the model in eval mode, and puts the
    model back in the mode it found when the run ends.

    Args:
        model: the `torch.nn.Module` to evaluate.
        data: an iterable of `(x, y)` batches.
        name: the engine's name (metrics are named `<name>_<metric>`).
        run_on: a ref (or filtered ref) whose firing runs an evaluation, e.g.
            `state.trainer.n_epoch_completed_ref`.
        metrics: a list of built-in names (`"accuracy"`, `"loss"` which
            needs `loss_fn`), ignite metric instances (wrapped in
            `IgniteMetric`), or callables `fn(engine) -> Metric`; or, as in
            ignite, a dict `{key: metric}` of those, each metric named
            `<name>_<key>` (`{"nll": ignite.metrics.Loss(fn)}` gives
            `<name>_nll`). A callable in a dict must name its metric
            `<name>_<key>` itself.
        loss_fn: the loss for the `"loss"` metric.
        device: as for the trainer.
        non_blocking: as for the trainer.
        prepare_batch: as for the trainer.
        amp_mode: as for the trainer.
        output_transform: `fn(x, y, y_pred) -> output` instead of `(y_pred, y)`.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import SupervisedEvaluator
        >>> with State() as s:
        ...     model = torch.nn.Linear(4, 3)
        ...     data = [(torch.randn(10, 4), torch.randint(0, 3, (10,)))]
        ...     evaluator = SupervisedEvaluator(model, data, name="val_evaluator", metrics=["accuracy", "loss"],
        ...                                     loss_fn=torch.nn.functional.cross_entropy)
        ...     _ = evaluator.run()
        ...     print(sorted(m.name for m in s.metrics))
        ['val_evaluator_accuracy', 'val_evaluator_loss']
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: Iterable[Any],
        *,
        name: str = "evaluator",
        run_on: Ref | FilteredRef | None = None,
        metrics: Sequence[Any] | Mapping[str, Any] = (),
        loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable[..., tuple[Any, Any]] = prepare_batch,
        output_transform: Callable[[Any, Any, Any], Any] | None = None,
        amp_mode: str | None = None,
    ) -> None:
        if isinstance(metrics, (str, Metric)):
            metrics = [metrics]
        if isinstance(metrics, Mapping):
            # ignite's {name: metric}: the keys name the metrics, the values are what to compute.
            specs: list[tuple[str | None, Any]] = list(metrics.items())
            for key, _ in specs:
                if not isinstance(key, str) or not key.isidentifier():
                    raise ValueError(
                        f"metric name {key!r} in metrics of evaluator {name!r} must be an identifier "
                        f"(the metric is named '{name}_<key>'), e.g. 'accuracy' or 'nll'"
                    )
        else:
            specs = [(None, spec) for spec in metrics]
        if any(isinstance(spec, str) and spec == "loss" for _, spec in specs) and loss_fn is None:
            raise ValueError(
                f"metric 'loss' of evaluator {name!r} needs loss_fn=..., e.g. torch.nn.functional.cross_entropy"
            )
        super().__init__(name, cast(Callable[[Engine, Any], Any], SupervisedEvaluator._step), data, run_on=run_on)
        _setup(self, model, device, non_blocking, prepare_batch, output_transform, amp_mode)
        self.loss_fn = loss_fn
        self.metrics = [self._metric(spec, key) for key, spec in specs]

    def _metric(self, spec: Any, key: str | None = None) -> Metric:
        name = None if key is None else f"{self.name}_{key}"
        if isinstance(spec, str) and spec == "accuracy":
            return Accuracy(engine=self, name=name)
        if isinstance(spec, str) and spec == "loss" and self.loss_fn is not None:  # __init__ asked for one
            return Loss(self.loss_fn, engine=self, name=name)
        if isinstance(spec, str):
            raise ValueError(
                f"unknown metric {spec!r} for evaluator {self.name!r}: built-in names are 'accuracy' and "
                "'loss'; pass an ignite metric instance or a callable fn(engine) -> Metric for others"
            )
        if isinstance(spec, Metric):
            if spec.engine is not self:
                raise ValueError(
                    f"metric {spec.name!r} follows engine {spec.engine.name!r}, not {self.name!r}; "
                    "pass a callable fn(engine) -> Metric to create it for this evaluator"
                )
            return self._named(spec, name)
        from ignite.metrics import Metric as IgniteBase

        if isinstance(spec, IgniteBase):
            from .ignite_metric import IgniteMetric

            return IgniteMetric(spec, engine=self, name=name)
        if callable(spec):
            metric = spec(self)
            if not isinstance(metric, Metric):
                raise TypeError(f"metric factory {spec!r} must return a features.Metric, got {metric!r}")
            return self._named(metric, name, created=True)
        raise TypeError(f"cannot make a metric of {spec!r} for evaluator {self.name!r}")

    def _named(self, metric: Metric, name: str | None, created: bool = False) -> Metric:
        """A metric given under a dict key must carry the name the key promises."""
        if name is None or metric.name == name:
            return metric
        if created:
            metric.remove()
        raise ValueError(
            f"metric {metric.name!r} was given under the key {name[len(self.name) + 1:]!r} of the metrics of "
            f"evaluator {self.name!r}, so it would be read as {name!r}: create it with name={name!r}, "
            "or pass it in a list"
        )

    def run(self, *args: Any, **kwargs: Any) -> Engine:
        module = self.model.module
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                return super().run(*args, **kwargs)
        finally:
            module.train(was_training)

    def _step(self, batch: Any) -> Any:
        x, y = self.prepare_batch(batch, self.device, self.non_blocking)
        module = self.model.module
        autocast = self._autocast
        if autocast is None:
            y_pred = module(x)
        else:
            with autocast(self.device, module):
                y_pred = module(x)
        if self.output_transform is not None:
            return self.output_transform(x, y, y_pred)
        return y_pred, y
