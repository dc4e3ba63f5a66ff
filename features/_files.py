"""The one atomic file writer: a kill or a power loss leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomically"]


def write_atomically(path: Path, write: Callable[[BinaryIO], object], *, temp: Path | None = None) -> None:
    """`write(file)` into a temp file beside `path`, fsync it, rename it over `path`, fsync the directory.

    `temp` names the temp file, for callers that recognise and clean up a
    killed writer's; by default a name unique to this process and thread.
    On any error the temp file is removed and `path` is left as it was.
    """
    if temp is None:
        import threading

        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
