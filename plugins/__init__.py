"""plugins: tools that read a whole State — charts, data flow, event traces, inspection.

Chart generators are features (category `plugins`); analysis tools
(`DataFlowGraph`, `EventTrace`, `describe`) are plain objects that take a
state and register nothing. Modules are imported on first use of a name.
"""

from __future__ import annotations

from statefire.frame._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS = {
    "EnginesMetricsCharts": "charts",
    "EnginesMetricsComparisonCharts": "charts",
    "HParams": "charts",
    "DataFlowGraph": "dataflow",
    "EventTrace": "trace",
    "describe": "describe",
    "Run": "runs",
    "Registry": "registry",
    "RunRecord": "registry",
    "MLflow": "mlflow",
    "main": "task",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
