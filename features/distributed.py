"""Distributed training: which process group is running, and which process writes files.

statefire needs nothing from the user beyond an initialized `torch.distributed`
process group (torchrun, `mp.spawn`, ignite's `idist.Parallel`): metrics
combine every process's data, samplers are told the epoch, and only the
first process writes TensorBoard events and checkpoints. Looked up in
`sys.modules`, so nothing here imports torch.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["process_group", "is_main_process"]


def process_group() -> Any:
    """`torch.distributed` when a process group of several processes is running, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return dist


def is_main_process() -> bool:
    """True in a single process, and in the process of rank 0 of a process group."""
    group = process_group()
    return group is None or group.get_rank() == 0
