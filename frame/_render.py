"""Short, readable summaries of values for reprs and the state tree.

Tensors are recognised by duck typing (`shape` and `dtype`), so frame never
imports an ML library; a tensor shows as its shape and dtype, a scalar tensor
as its value.
"""

from __future__ import annotations

from typing import Any

_MAX_TEXT = 60
_MAX_ITEMS = 4


def summarize(value: Any, depth: int = 0) -> str:
    """A one-line summary of `value`, at most a few dozen characters."""
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 3] + "...")
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(shape, property):
        return _tensor(value, shape, dtype)
    feature_name = getattr(value, "name", None)
    if hasattr(value, "_sf") and isinstance(feature_name, str):
        return f"<{type(value).__name__} {feature_name}>"
    if isinstance(value, (list, tuple)):
        if depth > 1:
            return f"{type(value).__name__}(len={len(value)})"
        items = [summarize(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"... {len(value)} items")
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        if isinstance(value, tuple) and len(value) == 1:
            close = ",)"
        return open_ + ", ".join(items) + close
    if isinstance(value, dict):
        if depth > 1 or len(value) > _MAX_ITEMS:
            return f"dict({len(value)} keys)"
        return "{" + ", ".join(f"{k!r}: {summarize(v, depth + 1)}" for k, v in value.items()) + "}"
    if callable(value):
        return getattr(value, "__qualname__", None) or type(value).__name__
    text = repr(value)
    if len(text) > _MAX_TEXT:
        text = f"<{type(value).__name__}>"
    return text


def _tensor(value: Any, shape: Any, dtype: Any) -> str:
    kind = type(value).__name__
    dtype_name = str(dtype).removeprefix("torch.")
    dims = list(shape)
    if not dims:
        try:
            return f"{kind.lower()}({float(value):.6g})"
        except (TypeError, ValueError):
            pass
    return f"{kind}[{', '.join(str(int(d)) for d in dims)}] {dtype_name}"


def render_tree(state: Any, width: int = 100) -> str:
    """The whole state as a tree: categories, features, then `name=value` pairs."""
    lines = ["State"]
    containers = [c for c in state.containers if len(c)]
    for ci, container in enumerate(containers):
        last_container = ci == len(containers) - 1
        lines.append(("└─ " if last_container else "├─ ") + container.category)
        bar = "   " if last_container else "│  "
        features = list(container)
        for fi, feature in enumerate(features):
            last_feature = fi == len(features) - 1
            lines.append(bar + ("└─ " if last_feature else "├─ ") + f"{feature.name} ({type(feature).__name__})")
            indent = bar + ("   " if last_feature else "│  ") + "   "
            pairs = [f"{name}={summarize(value)}" for name, value in feature.shown_values().items()]
            lines.extend(_wrap(pairs, indent, width))
    if not containers:
        lines.append("└─ (empty)")
    return "\n".join(lines)


def _wrap(pairs: list[str], indent: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for pair in pairs:
        if current and len(indent) + len(current) + 2 + len(pair) > width:
            lines.append(indent + current)
            current = pair
        else:
            current = f"{current}  {pair}" if current else pair
    if current:
        lines.append(indent + current)
    return lines


def html_rows(feature: Any) -> str:
    """Table rows for a notebook: the feature's path and class, then one row per state object."""
    import html

    values = "".join(
        f"<tr><td style='padding-left:2em'>{html.escape(name)}</td>"
        f"<td><code>{html.escape(summarize(value))}</code></td></tr>"
        for name, value in feature.shown_values().items()
    )
    return (
        f"<tr><th colspan=2 style='text-align:left'>{html.escape(feature.path)} "
        f"<small>({type(feature).__name__})</small></th></tr>{values}"
    )
