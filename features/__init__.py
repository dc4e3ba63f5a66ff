"""features: the peers of a State — engines, output handlers, metrics, charts, handlers.

Torch-dependent modules are imported lazily, on first use of one of their
names, so `from statefire.features import Engine` imports no torch.
"""

from __future__ import annotations

from statefire.frame._lazy import lazy_exports

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
    "ModelCharts": "charts",
    "Checkpoint": "checkpoint",
    "EarlyStopping": "handlers",
    "TerminateOnNan": "handlers",
    "LRScheduler": "handlers",
    "Timer": "handlers",
    "ProgressBar": "progress",
    "EpochLog": "console",
    "Clock": "clock",
    "is_main_process": "distributed",
    "CheckpointError": "checkpoint",
    "UnsafeCheckpointError": "checkpoint",
    "ResumeInfo": "checkpoint",
    "predict": "prediction",
    "Component": "components",
    "auto_model": "distributed",
    "auto_optim": "distributed",
    "auto_dataloader": "distributed",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
