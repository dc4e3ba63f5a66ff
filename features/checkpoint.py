"""Checkpoints: the whole state on disk, written atomically, restored exactly.

A checkpoint file holds `state.state_dict()` (models, optimizers, engines
with their data position, metrics' accumulators, every feature) plus the
RNG states of python, numpy and torch at save time. Files are written
through a temp file, fsync'ed and renamed, so a kill during a save leaves
the previous checkpoint intact; `Checkpoint.latest(dirname)` finds the
newest complete one and `Checkpoint.load(path)` restores it silently.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import sys
import warnings
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.handlers import DiskSaver

from statefire.frame import Counter, Feature, FilteredRef, Ref, State, StateObject, as_ref
from statefire.frame.errors import FrameError

from . import engine as _engine
from ._artifacts import CHECKPOINTS, artifact_dir
from .distributed import is_main_process

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "UnsafeCheckpointError",
    "ResumeInfo",
    "CHECKPOINT_PRIORITY",
    "STEP_OBJECTS",
]

#: Checkpoints attach at the lowest priority: they save after every other
#: callback on their trigger (evaluators, metrics, charts) has run.
CHECKPOINT_PRIORITY = -(2**62)

#: State objects set inside an engine step: a checkpoint there would save a
#: half-done iteration, so they are refused as triggers.
STEP_OBJECTS = frozenset({"batch", "output", "n_iteration_started"})

_FORMAT = "statefire-checkpoint"
_VERSION = 1
_TEMP_MARK = ".tmp-"


class CheckpointError(FrameError, ValueError):
    """A checkpoint file cannot be used: missing, truncated, corrupted, or not a checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds pickled objects beyond plain data; it was not loaded."""


@dataclass
class ResumeInfo:
    """What `Checkpoint.load` restored: the file, its save number and its state dict.

    Writers read it to purge what was logged after the checkpoint (a
    TensorBoard `SummaryWriter(purge_step=info.purge_step(x_ref))`), so
    resumed curves do not double.
    """

    path: Path
    save_number: int
    score: float | None
    state_dict: dict[str, Any] = field(repr=False)

    def restored_value(self, ref: Ref | FilteredRef | str) -> Any:
        """The value `ref` (or a path like `"engines.trainer.n_samples"`) had in the checkpoint."""
        path = ref if isinstance(ref, str) else ref.path
        category, feature, name = path.split(".", 2)
        try:
            return self.state_dict[category][feature][name]
        except (KeyError, TypeError):
            raise KeyError(f"{path} is not in checkpoint {self.path}") from None

    def purge_step(self, ref: Ref | FilteredRef | str) -> int:
        """The first step to purge for a chart whose x axis is `ref`: its saved value + 1.

        Points at the saved value were written before the save (a checkpoint
        attaches at the lowest priority); everything later is logged again.
        """
        return int(self.restored_value(ref)) + 1


# The last checkpoint each State was restored from (see `Checkpoint.resumed`).
_RESUMED: weakref.WeakKeyDictionary[State, ResumeInfo] = weakref.WeakKeyDictionary()


class _TorchGlobalRNG:
    """torch's global RNG seen as a generator (`get_state`/`set_state`)."""

    @staticmethod
    def get_state() -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_state(state: torch.Tensor) -> None:
        torch.set_rng_state(state)

    def __repr__(self) -> str:
        return "<torch global RNG>"


_TORCH_GLOBAL_RNG = _TorchGlobalRNG()


def _global_rng_of(data: Any) -> Any:
    """A DataLoader with no generator of its own draws its order from torch's global RNG."""
    if isinstance(data, torch.utils.data.DataLoader) and data.generator is None:
        return _TORCH_GLOBAL_RNG
    return None


if _global_rng_of not in _engine.ORDER_GENERATOR_FINDERS:
    _engine.ORDER_GENERATOR_FINDERS.append(_global_rng_of)


class _AtomicDiskSaver(DiskSaver):
    """ignite's `DiskSaver` (directory set-up, rank-0 saving, removal), made crash-safe.

    ignite writes an anonymous temp file and renames it without fsync; this
    writes `<file>.tmp-<pid>`, fsyncs it, renames it and fsyncs the directory,
    so after a power loss or a kill the final name holds either nothing or a
    complete file, and a leftover temp file is recognisable.
    """

    def _save_func(self, checkpoint: Any, path: Path, func: Any) -> None:  # type: ignore[override]
        _write_atomically(checkpoint, Path(path), func)


def _write_atomically(payload: Any, path: Path, func: Any = torch.save) -> None:
    """`func(payload, file)` into `<path>.tmp-<pid>`, fsync, rename to `path`, fsync the directory."""
    temp = path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}")
    try:
        with open(temp, "wb") as file:
            func(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpoint(Feature):
    """Saves the whole state on each firing of `trigger`; keeps the last (or best) files.

    Each file holds `state.state_dict()` — models, optimizers, engines with
    their data position, metrics, every feature — plus the RNG states of
    python, numpy and torch. Writes are atomic; a kill during a save leaves
    the previous file intact. The checkpoint attaches at the lowest priority,
    so it saves after evaluators, metrics and charts on the same trigger.

    Args:
        dirname: the directory of the files (created if needed). Left out,
            the files go into the State's `Run` (`<run.dir>/checkpoints`) or
            experiment-tree node, looked up when the first file is written.
        trigger: a ref or filtered ref to save on, e.g.
            `trainer.n_iteration_completed_ref(every=100)` or
            `trainer.n_epoch_completed_ref`. Objects set inside a step
            (`batch`, `output`, `n_iteration_started`) are refused.
        n_saved: how many files to keep (None keeps all).
        score_ref: keep the best `n_saved` files by this value (e.g. a
            validation accuracy's `value_ref`) instead of the last ones.
        mode: `"max"` or `"min"`: which scores are best.
        prefix: file names are `<prefix>_<save number>.pt`.
        name: the feature's name (default `checkpoint`).

    Example:
        >>> import tempfile, torch
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, Checkpoint, Model
        >>> with State() as s, tempfile.TemporaryDirectory() as tmp:
        ...     model = Model(torch.nn.Linear(2, 1))
        ...     trainer = Engine("trainer", lambda e, b: b, data=range(6), n_epochs=2)
        ...     checkpoint = Checkpoint(tmp, trigger=trainer.n_epoch_completed_ref, n_saved=1)
        ...     _ = trainer.run()
        ...     latest = Checkpoint.latest(tmp)
        ...     print(latest.name, trainer.n_epoch_completed)
        ...     info = Checkpoint.load(latest)
        ...     print(info.save_number)
        checkpoint_2.pt 2
        2
    """

    category = "handlers"

    n_saves = Counter(doc="files written so far: the save number of the last one")
    last_path = StateObject(None, doc="the last file written")
    kept = StateObject([], doc="the files kept, as [save number, score or None, file name]")

    def __init__(
        self,
        dirname: str | os.PathLike[str] | None = None,
        *,
        trigger: Ref | FilteredRef,
        n_saved: int | None = 2,
        score_ref: Ref | FilteredRef | None = None,
        mode: str = "max",
        prefix: str = "checkpoint",
        name: str | None = None,
    ) -> None:
        trigger = as_ref(trigger, "trigger of Checkpoint")
        if trigger.name in STEP_OBJECTS:
            raise ValueError(
                f"trigger of Checkpoint cannot be {trigger.path}: it is set inside an engine step, "
                "so a checkpoint there would save a half-done iteration; trigger on "
                "n_iteration_completed_ref(every=N) or n_epoch_completed_ref instead"
            )
        if n_saved is not None and (isinstance(n_saved, bool) or not isinstance(n_saved, int) or n_saved <= 0):
            raise ValueError(f"n_saved of Checkpoint must be a positive int or None (keep all), got {n_saved!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode of Checkpoint must be 'max' or 'min', got {mode!r}")
        if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise ValueError(f"prefix of Checkpoint must be a plain file-name part, got {prefix!r}")
        if score_ref is not None:
            score_ref = as_ref(score_ref, "score_ref of Checkpoint")
        super().__init__(name=name)
        for ref, argument in ((trigger, "trigger"), (score_ref, "score_ref")):
            if ref is not None and getattr(ref.owner, "state", None) is not self.state:
                raise ValueError(
                    f"{argument} of checkpoint {self.name!r} ({ref.path}) belongs to another State; "
                    "create both inside the same `with State():` block"
                )
        self._dirname = None if dirname is None else Path(dirname)
        self._saver: _AtomicDiskSaver | None = None
        self.trigger = trigger
        self.n_saved = n_saved
        self.score_ref = score_ref
        self.mode = mode
        self.prefix = prefix
        self._pending: dict[str, Any] | None = None
        if self._dirname is not None:
            self.clean_temp_files()
        trigger.attach(self.save, priority=CHECKPOINT_PRIORITY)

    @property
    def dirname(self) -> Path:
        """The directory of the files: the one given, else the State's Run or tree node's."""
        if self._dirname is None:
            self._dirname = artifact_dir(self.state, CHECKPOINTS, "Checkpoint()")
            self.clean_temp_files()
        return self._dirname

    # -- saving -------------------------------------------------------------
    def save(self) -> Path | None:
        """Write a checkpoint now; returns its path (None when a best-only save skips it)."""
        number = self.n_saves + 1
        filename = f"{self.prefix}_{number}.pt"
        score = self._score()
        entries = [*self.kept, [number, score, filename]]
        if self.n_saved is not None and len(entries) > self.n_saved:
            order = sorted(entries, key=self._rank)  # worst first
            dropped = order[: len(entries) - self.n_saved]
            if [number, score, filename] in dropped:
                return None  # not among the best: nothing to write
            entries = [e for e in entries if e not in dropped]
        else:
            dropped = []
        path = self.dirname / filename
        # The file must hold this feature's state *after* the save, so that a
        # resumed run numbers and prunes its next files correctly.
        self._pending = {"n_saves": number, "last_path": str(path), "kept": entries}
        try:
            payload = {
                "format": _FORMAT,
                "version": _VERSION,
                "save_number": number,
                "score": score,
                "state": self.state.state_dict(),
                "rng": _rng_states(),
            }
        finally:
            self._pending = None
        if is_main_process():  # in distributed training, the first process writes the files
            if self._saver is None:
                self._saver = _AtomicDiskSaver(self.dirname, require_empty=False)
            self._saver(payload, filename)
            for _, _, old in dropped:
                if old != filename:
                    (self.dirname / old).unlink(missing_ok=True)
        self.kept = entries
        self.last_path = str(path)
        self.n_saves = number
        return path

    def _score(self) -> float | None:
        if self.score_ref is None:
            return None
        value = self.score_ref.value
        try:
            score = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"score_ref of checkpoint {self.name!r} ({self.score_ref.path}) must hold a number "
                f"when the checkpoint fires, got {value!r}; trigger the checkpoint after the "
                "metric is computed (e.g. on the trainer's n_epoch_completed_ref)"
            ) from None
        return score

    def _rank(self, entry: list[Any]) -> tuple[float, int]:
        number, score, _ = entry
        if score is None:
            return (float(number), number)
        return (score if self.mode == "max" else -score, number)

    def clean_temp_files(self) -> list[Path]:
        """Delete the temp files a killed save left behind; returns them."""
        removed = []
        if self.dirname.is_dir():
            for path in self.dirname.glob(f"{self.prefix}_*.pt{_TEMP_MARK}*"):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    # -- serialization --------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self._pending is not None:
            return dict(self._pending)
        return super().state_dict()

    # -- finding and loading ----------------------------------------------------
    @staticmethod
    def latest(dirname: str | os.PathLike[str], prefix: str = "checkpoint") -> Path | None:
        """The newest complete checkpoint in `dirname` by save number, or None.

        Temp files of an interrupted save are ignored, and so is a file that
        is not a complete zip archive (torch's format).
        """
        directory = Path(dirname)
        if not directory.is_dir():
            return None
        pattern = re.compile(rf"{re.escape(prefix)}_(\d+)\.pt")
        numbered = []
        for path in directory.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                numbered.append((int(match.group(1)), path))
        for _, path in sorted(numbered, reverse=True):
            if zipfile.is_zipfile(path):
                return path
        return None

    @staticmethod
    def write(
        path: str | os.PathLike[str], *, state: State | None = None, save_number: int = 1, score: float | None = None
    ) -> Path:
        """Write `state` (default: the current State) to the checkpoint file `path` now, atomically.

        The file is the one a `Checkpoint` feature writes (the state dict and
        the RNG states), so `Checkpoint.load(path)` restores it exactly; for
        tools that save a state once rather than on a trigger.
        """
        path = Path(path)
        state = state or State.current()
        payload = {
            "format": _FORMAT,
            "version": _VERSION,
            "save_number": save_number,
            "score": score,
            "state": state.state_dict(),
            "rng": _rng_states(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(payload, path)
        return path

    @staticmethod
    def read(path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a checkpoint file safely (`weights_only=True`) without restoring it.

        Raises:
            FileNotFoundError: no such file.
            UnsafeCheckpointError: it holds pickled objects beyond plain data.
            CheckpointError: it is truncated, corrupted, or not a checkpoint.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"checkpoint file {str(path)!r} does not exist; Checkpoint.latest(dirname) finds the newest one"
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            detail = str(error)
            # An allowlist refusal names a global; anything else (a bad opcode) is damage.
            if "Unsupported global" in detail or "GLOBAL" in detail:
                unsafe = re.search(r"Unsupported global: GLOBAL ([^\s]+)", detail)
                raise UnsafeCheckpointError(
                    f"refused to load checkpoint {str(path)!r}: it holds a pickled object that is not plain "
                    f"data ({unsafe.group(1) if unsafe else 'unsupported pickle content'}); loading it could "
                    "run arbitrary code, so nothing was executed. Load it with torch.load(weights_only=False) "
                    "only if you trust where it came from"
                ) from None
            raise _corrupted(path, error) from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
            raise _corrupted(path, error) from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
            raise CheckpointError(
                f"{str(path)!r} is not a statefire checkpoint (found {keys}); "
                "it was not written by features.Checkpoint"
            )
        return payload

    @staticmethod
    def load(
        path: str | os.PathLike[str],
        *,
        state: State | None = None,
        strict: bool = True,
        restore_rng: bool = True,
    ) -> ResumeInfo:
        """Restore a checkpoint into `state` (default: the current State), silently.

        Every feature gets its saved values back, no callback fires; the RNG
        states are restored too, so `trainer.run()` continues exactly where
        the saved run stopped, mid-epoch included.

        Args:
            path: a checkpoint file, e.g. `Checkpoint.latest(dirname)`.
            state: the State to restore (default: the current one).
            strict: refuse a checkpoint whose features or keys do not match.
            restore_rng: also restore the python, numpy and torch RNG states.

        Returns:
            A `ResumeInfo` (also available as `Checkpoint.resumed(state)`).

        Raises:
            UnsafeCheckpointError: the file holds pickled objects; nothing ran.
            CheckpointError: the file is truncated, corrupted or not a checkpoint.
            frame.StateDictError: with `strict`, the state does not match; every
                missing and unexpected key is listed by path.
        """
        path = Path(path)
        payload = Checkpoint.read(path)
        state = state or State.current()
        try:
            state.load_state_dict(payload["state"], strict=strict)
        except FrameError as error:
            _engine._add_note(error, f"while loading checkpoint {str(path)!r}")
            raise
        if restore_rng:
            _set_rng_states(payload["rng"])
        info = ResumeInfo(path, payload["save_number"], payload.get("score"), payload["state"])
        _RESUMED[state] = info
        _announce_resume(state, info)
        return info

    @staticmethod
    def resumed(state: State | None = None) -> ResumeInfo | None:
        """What the last `Checkpoint.load` into `state` restored, or None.

        The hook for writers: a TensorBoard writer opening its files after a
        resume passes `purge_step=info.purge_step(x_ref)`, so what was logged
        after the checkpoint is dropped and curves do not double.
        """
        return _RESUMED.get(state or State.current())


def _announce_resume(state: State, info: ResumeInfo) -> None:
    """Tell the features that react to a resume.

    A feature defining `resume_from(info)` gets it called. A writer taking a
    `purge_step` (the TensorBoard feature) that has not opened its files yet
    gets the step after the checkpoint on the charts' x axis, so what was
    logged past the checkpoint is purged and curves do not double.
    """
    for feature in state.features:
        hook = getattr(feature, "resume_from", None)
        if callable(hook):
            hook(info)
    axes = {
        chart.x_ref.path: chart.x_ref
        for chart in state.features
        if chart.category == "charts" and isinstance(getattr(chart, "x_ref", None), (Ref, FilteredRef))
    }
    writers = [
        w for w in state.features
        if w.category == "writers" and hasattr(w, "purge_step") and w.purge_step is None and not getattr(w, "runs", ())
    ]  # fmt: skip
    if not writers or not axes:
        return
    if len(axes) > 1:
        warnings.warn(
            f"resumed from {str(info.path)!r}: charts use several x axes ({', '.join(sorted(axes))}), so no "
            "single purge step fits; pass purge_step=... to the writer to purge what was logged past the checkpoint",
            stacklevel=3,
        )
        return
    (axis,) = axes.values()
    try:
        step = info.purge_step(axis)
    except (KeyError, TypeError, ValueError):
        return
    for writer in writers:
        writer.purge_step = step


def _corrupted(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint file {str(path)!r} is truncated or corrupted ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); use an older file, "
        "e.g. the one before it in Checkpoint's directory"
    )


def _rng_states() -> dict[str, Any]:
    """The global RNG states as plain data (numpy's as lists, so weights_only loads them)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_states(rng: dict[str, Any]) -> None:
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
