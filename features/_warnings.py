"""Warnings that point at the user's line, not at the dispatch machinery that issued them."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from types import FrameType

__all__ = ["warn_user"]

# frame/, features/ and plugins/ are siblings both in a checkout and installed (statefire/...).
_PACKAGES = Path(__file__).resolve().parent.parent
_OURS = tuple(str(_PACKAGES / name) for name in ("frame", "features", "plugins"))
_LIBRARIES = ("contextlib",)  # `with state.hold():` flushes from contextlib's frames


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """`warnings.warn` with the stack level of the first frame outside statefire: the user's line."""
    frame: FrameType | None = sys._getframe(1)
    level = 2  # 1 is this function, 2 its caller
    while frame is not None and (
        frame.f_code.co_filename.startswith(_OURS) or Path(frame.f_code.co_filename).stem in _LIBRARIES
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
