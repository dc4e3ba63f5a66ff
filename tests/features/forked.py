"""Forked children for the test scripts: a restart in a child costs no import time (torch is loaded already)."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


def fork_call(function: Callable[..., Any], *args: Any) -> int:
    """Call `function(*args)` in a forked child and return its pid; the child exits 1 (traceback on stderr) if it
    raises, 0 otherwise."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            function(*args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    return pid


def wait_exit(pid: int) -> int:
    """The exit code of child `pid` once it ends (-N when killed by signal N)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
