"""features: the peers of a State — engines, output handlers, metrics, charts, handlers.

Torch-dependent modules are imported lazily, on first use of one of their
names, so `from features import Engine` imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "Engine": "engine",
    "EngineError": "engine",
    "RUN_ON_PRIORITY": "engine",
    "OutputHandler": "output_handler",
    "Metric": "metrics",
    "Accuracy": "metrics",
    "Loss": "metrics",
    "AverageOutput": "metrics",
    "RunningAverage": "metrics",
    "IgniteMetric": "ignite_metric",
    "Model": "components",
    "Optimizer": "components",
    "SupervisedTrainer": "supervised",
    "SupervisedEvaluator": "supervised",
    "TensorBoard": "tensorboard",
    "ScalarChart": "charts",
    "Checkpoint": "checkpoint",
    "EarlyStopping": "handlers",
    "TerminateOnNan": "handlers",
    "LRScheduler": "handlers",
    "Timer": "handlers",
    "ProgressBar": "progress",
    "Clock": "clock",
    "CheckpointError": "checkpoint",
    "UnsafeCheckpointError": "checkpoint",
    "ResumeInfo": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
