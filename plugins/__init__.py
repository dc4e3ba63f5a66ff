"""plugins: tools that read a whole State — charts, data flow, event traces, inspection.

Chart generators are features (category `plugins`); analysis tools
(`DataFlowGraph`, `EventTrace`, `describe`) are plain objects that take a
state and register nothing. Modules are imported on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "EnginesMetricsCharts": "charts",
    "EnginesMetricsComparisonCharts": "charts",
    "HParams": "charts",
    "DataFlowGraph": "dataflow",
    "EventTrace": "trace",
    "describe": "describe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
