"""Where a feature writes when it was given no directory.

A plugin feature that owns a directory for the whole experiment (a `Run`, a
node of an `ExperimentTree`) offers `artifact_dir(kind)`; a feature that
writes files and was given no directory (`TensorBoard()`, `Checkpoint()`)
asks the State when it first needs one, so the provider may be created
before or after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TENSORBOARD", "CHECKPOINTS", "artifact_dir", "provided_dir"]

#: The kinds of directory a provider is asked for.
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"


def provided_dir(state: Any, kind: str) -> Path | None:
    """The directory the State's provider offers for `kind`, or None without a provider.

    A provider is any feature of the `plugins` category with a method
    `artifact_dir(kind) -> str | Path | None`; the first one answering wins.
    """
    for feature in state.features:
        offer = getattr(feature, "artifact_dir", None) if feature.category == "plugins" else None
        if offer is not None:
            directory = offer(kind)
            if directory is not None:
                return Path(directory)
    return None


def artifact_dir(state: Any, kind: str, who: str) -> Path:
    """`provided_dir`, or a clear error naming `who` (e.g. "TensorBoard()") and the two ways out."""
    directory = provided_dir(state, kind)
    if directory is None:
        raise ValueError(
            f"{who} was given no directory and there is no Run or experiment-tree node in its State "
            f"to write into; pass a directory (e.g. {who[:-1]}'runs/exp')) or create a "
            "`statefire.plugins.Run()` first"
        )
    return directory
