"""plugins: tools that read a whole State — charts, data flow, event traces, inspection.

Chart generators are features (category `plugins`); analysis tools
(`DataFlowGraph`, `EventTrace`, `describe`) are plain objects that take a
state and register nothing. Modules are imported on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statefire.frame import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "EnginesMetricsCharts": "charts",
    "EnginesMetricsComparisonCharts": "charts",
    "HParams": "charts",
    "DataFlowGraph": "dataflow",
    "EventTrace": "trace",
    "describe": "describe",
    "ExperimentTree": "trees",
    "TreeNode": "trees",
    "TreeRunResult": "trees",
    "TreeError": "trees",
    "Run": "runs",
    "Registry": "registry",
    "RunRecord": "registry",
    "MLflow": "mlflow",
    "main": "task",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

# Real imports for type checkers only (at run time names load lazily, on first use);
# tests/test_typing.py checks that this block names every entry of _EXPORTS.
if TYPE_CHECKING:
    from .charts import EnginesMetricsCharts as EnginesMetricsCharts
    from .charts import EnginesMetricsComparisonCharts as EnginesMetricsComparisonCharts
    from .charts import HParams as HParams
    from .dataflow import DataFlowGraph as DataFlowGraph
    from .trace import EventTrace as EventTrace
    from .describe import describe as describe
    from .trees import ExperimentTree as ExperimentTree
    from .trees import TreeError as TreeError
    from .trees import TreeNode as TreeNode
    from .trees import TreeRunResult as TreeRunResult
    from .runs import Run as Run
    from .registry import Registry as Registry
    from .registry import RunRecord as RunRecord
    from .mlflow import MLflow as MLflow
    from .task import main as main
