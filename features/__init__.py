"""features: the peers of a State — engines, output handlers, metrics, charts, handlers.

Torch-dependent modules are imported lazily, on first use of one of their
names, so `from statefire.features import Engine` imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statefire.frame import lazy_exports

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
    "PRIORITIES": "_priorities",
    "priority_table": "_priorities",
    "METRIC_PRIORITY": "_priorities",
    "LAYOUT_PRIORITY": "_priorities",
    "FLUSH_PRIORITY": "_priorities",
    "CHECKPOINT_PRIORITY": "_priorities",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

# Real imports for type checkers only (at run time names load lazily, on first use);
# tests/test_typing.py checks that this block names every entry of _EXPORTS.
if TYPE_CHECKING:
    from .engine import Engine as Engine
    from .engine import EngineError as EngineError
    from .engine import RUN_ON_PRIORITY as RUN_ON_PRIORITY
    from .output_handler import OutputHandler as OutputHandler
    from .metrics import Metric as Metric
    from .metrics import Accuracy as Accuracy
    from .metrics import Loss as Loss
    from .metrics import AverageOutput as AverageOutput
    from .metrics import RunningAverage as RunningAverage
    from .ignite_metric import IgniteMetric as IgniteMetric
    from .components import Model as Model
    from .components import Optimizer as Optimizer
    from .supervised import SupervisedTrainer as SupervisedTrainer
    from .supervised import SupervisedEvaluator as SupervisedEvaluator
    from .tensorboard import TensorBoard as TensorBoard
    from .charts import ScalarChart as ScalarChart
    from .charts import ModelCharts as ModelCharts
    from .checkpoint import Checkpoint as Checkpoint
    from .checkpoint import CheckpointError as CheckpointError
    from .checkpoint import UnsafeCheckpointError as UnsafeCheckpointError
    from .checkpoint import ResumeInfo as ResumeInfo
    from .handlers import EarlyStopping as EarlyStopping
    from .handlers import TerminateOnNan as TerminateOnNan
    from .handlers import LRScheduler as LRScheduler
    from .handlers import Timer as Timer
    from .progress import ProgressBar as ProgressBar
    from .clock import Clock as Clock
    from .distributed import is_main_process as is_main_process
    from .console import EpochLog as EpochLog
    from .prediction import predict as predict
    from .components import Component as Component
    from .distributed import auto_dataloader as auto_dataloader
    from .distributed import auto_model as auto_model
    from .distributed import auto_optim as auto_optim
    from ._priorities import PRIORITIES as PRIORITIES
    from ._priorities import priority_table as priority_table
    from ._priorities import METRIC_PRIORITY as METRIC_PRIORITY
    from ._priorities import LAYOUT_PRIORITY as LAYOUT_PRIORITY
    from ._priorities import FLUSH_PRIORITY as FLUSH_PRIORITY
    from ._priorities import CHECKPOINT_PRIORITY as CHECKPOINT_PRIORITY
