"""Checkpoints: the whole state on disk, written atomically, restored exactly.

A checkpoint file holds `state.state_dict()` (models, optimizers, engines
with their data position, metrics' accumulators, every feature) plus the
RNG states of python, numpy and torch at save time. Files are written
through a temp file, fsync'ed and renamed, so a kill during a save leaves
the previous checkpoint intact; `Checkpoint.latest(dirname)` finds the
newest complete one and `Checkpoint.load(path)` restores it silently.

In distributed training the first process writes the file, after gathering
every process's RNG states and own feature states (data positions, partial
metric accumulators); on load each process restores its own entry.
"""

from __future__ import annotations

import collections
import errno
import io
import math
import os
import pickle
import random
import re
import warnings
import weakref
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from ignite.handlers import DiskSaver

from statefire.frame import Counter, Feature, FilteredRef, Ref, State, StateObject, as_ref, check
from statefire.frame.errors import FrameError, add_note

from . import engine as _engine
from ._artifacts import CHECKPOINTS, artifact_dir
from ._files import write_atomically
from ._judging import in_training, resolve_mode
from ._priorities import CHECKPOINT_PRIORITY
from .components import _unwrapped
from .distributed import is_main_process, process_group, process_rank

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "UnsafeCheckpointError",
    "ResumeInfo",
    "CHECKPOINT_PRIORITY",
    "STEP_OBJECTS",
]

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
    """`func(payload, file)` into `<path>.tmp-<pid>`, fsync, rename to `path`, fsync the directory.

    A full disk (or quota, or file-size limit) is an OSError naming the file;
    the temp file is removed and the previous files stay intact.
    """
    temp = path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}")  # recognised and cleaned after a kill
    try:
        write_atomically(path, lambda file: func(payload, file), temp=temp)
    except BaseException as error:
        full = _space_error(error)
        if full is not None:
            raise OSError(
                full.errno,
                f"{_SPACE_ERRORS.get(full.errno or 0, full.strerror)} while writing checkpoint {str(path)!r}: "
                "the file was not written and the previous checkpoints are intact; free space in that directory "
                "(or raise the limit), or give Checkpoint another dirname",
                str(path),
            ) from error
        raise


#: The write errors that mean "no room": said by name, with the file.
_SPACE_ERRORS = {
    errno.ENOSPC: "no space left on the device (ENOSPC)",
    errno.EDQUOT: "the disk quota is exceeded (EDQUOT)",
    errno.EFBIG: "the file is larger than the file-size limit (EFBIG)",
}


def _space_error(error: BaseException | None) -> OSError | None:
    """The out-of-space OSError behind `error` (torch's writer wraps it in a RuntimeError), if any."""
    for _ in range(8):
        if error is None:
            return None
        if isinstance(error, OSError) and error.errno in _SPACE_ERRORS:
            return error
        error = error.__cause__ or error.__context__
    return None


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
            Only saves inside a training count: when the trigger or the
            score comes from an evaluator run by hand (its trainer idle),
            nothing is written.
        mode: `"max"` or `"min"`: which scores are best; by default the
            direction of the score's metric (`higher_is_better`: `Loss`
            lower, `Accuracy` higher), required when that is not known. A
            NaN score ranks below every real one: it never displaces a real
            score's file.
        manual_runs: with `score_ref`, also save on evaluations run by
            hand (by default they write nothing).
        prefix: file names are `<prefix>_<save number>.pt` (with a
            `score_ref`, `<prefix>_<save number>_score=<score>.pt`, the
            score to 4 decimals as in ignite's names); by default the
            feature's name, so two checkpoints in one directory (the last
            files and the best one) keep separate series. Two checkpoints of
            one State with the same directory and prefix are refused.
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
    kept: StateObject[list[Any]] = StateObject([], doc="the files kept, as [save number, score or None, file name]")

    def __init__(
        self,
        dirname: str | os.PathLike[str] | None = None,
        *,
        trigger: Ref | FilteredRef,
        n_saved: int | None = 2,
        score_ref: Ref | FilteredRef | None = None,
        mode: str | None = None,
        prefix: str | None = None,
        name: str | None = None,
        manual_runs: bool = False,
    ) -> None:
        trigger = as_ref(trigger, "trigger of Checkpoint")
        if trigger.name in STEP_OBJECTS:
            raise ValueError(
                f"trigger of Checkpoint cannot be {trigger.path}: it is set inside an engine step, "
                "so a checkpoint there would save a half-done iteration; trigger on "
                "n_iteration_completed_ref(every=N) or n_epoch_completed_ref instead"
            )
        check.optional(check.positive_int)(n_saved, "n_saved", "Checkpoint")
        if mode not in ("max", "min", None):
            raise ValueError(
                f"mode of Checkpoint must be 'max' or 'min', got {mode!r} (or leave it out: the metric's direction)"
            )
        if prefix is not None and (
            not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix)
        ):
            raise ValueError(f"prefix of Checkpoint must be a plain file-name part, got {prefix!r}")
        if dirname is not None:
            _check_directory(Path(dirname))
        if score_ref is not None:
            score_ref = as_ref(score_ref, "score_ref of Checkpoint")
            mode = resolve_mode(mode, score_ref, "a best-model Checkpoint")
        super().__init__(name=name)
        for ref, argument in ((trigger, "trigger"), (score_ref, "score_ref")):
            check.optional(check.same_state(self))(ref, argument, f"checkpoint {self.name!r}")
        self._dirname = None if dirname is None else Path(dirname)
        self._saver: _AtomicDiskSaver | None = None
        self.trigger = trigger
        self.n_saved = n_saved
        self.score_ref = score_ref
        self.mode = mode or "max"
        self.prefix = self.name if prefix is None else prefix
        self.manual_runs = bool(manual_runs)
        self._pending: dict[str, Any] | None = None
        if self._dirname is not None:
            self._check_series()
            self.clean_temp_files()
        trigger.attach(self._triggered, priority=CHECKPOINT_PRIORITY)

    @property
    def dirname(self) -> Path:
        """The directory of the files: the one given, else the State's Run or tree node's."""
        if self._dirname is None:
            self._dirname = artifact_dir(self.state, CHECKPOINTS, "Checkpoint()")
            self._check_series()
            self.clean_temp_files()
        return self._dirname

    def _check_series(self) -> None:
        """Refuse a second checkpoint writing the same file names: each would delete the other's files."""
        state = self.state
        if state is None:
            return
        here = _same_place(self._dirname)
        for other in state.features:
            if other is self or not isinstance(other, Checkpoint) or other._dirname is None:
                continue
            if other.prefix == self.prefix and _same_place(other._dirname) == here:
                raise ValueError(
                    f"checkpoints {other.name!r} and {self.name!r} would both write {self.prefix}_<n>.pt in "
                    f"{str(self._dirname)!r}, and each would delete the other's files; give them different "
                    "prefixes (leave prefix out: each is then named after its checkpoint) or directories"
                )

    # -- saving -------------------------------------------------------------
    def _triggered(self) -> None:
        # A best-model checkpoint judges training progress: an evaluation run by hand does not count.
        if self.score_ref is None or self.manual_runs or (
            in_training(self.trigger) and in_training(self.score_ref)
        ):
            self.save()

    def save(self) -> Path | None:
        """Write a checkpoint now; returns its path (None when a best-only save skips it)."""
        number = self.n_saves + 1
        score = self._score()
        filename = f"{self.prefix}_{number}.pt" if score is None else f"{self.prefix}_{number}_score={score:.4f}.pt"
        entries = [*self.kept, [number, score, filename]]
        if self.n_saved is not None and len(entries) > self.n_saved:
            order = sorted(entries, key=self._rank)  # worst first
            dropped = order[: len(entries) - self.n_saved]
            gone = {entry[0] for entry in dropped}  # by save number: a NaN score equals nothing
            if number in gone:
                return None  # not among the best: nothing to write
            entries = [e for e in entries if e[0] not in gone]
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
                "state": _plain(self.require_state().state_dict(), path),
                "rng": _rng_states(),
            }
            payload["processes"] = _gather_process_states(payload["state"])
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

    def _rank(self, entry: list[Any]) -> tuple[int, float, int]:
        """Worst first: NaN scores below every real one (a NaN never displaces a real score), then by score."""
        number, score, _ = entry
        if score is None:
            return (1, float(number), number)
        if math.isnan(score):
            return (0, 0.0, number)
        return (1, score if self.mode == "max" else -score, number)

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
    def latest(dirname: str | os.PathLike[str], prefix: str | None = None) -> Path | None:
        """The newest complete checkpoint of one series in `dirname` by save number, or None.

        A series is the files of one checkpoint, `<prefix>_<n>.pt`; a
        checkpoint's prefix is by default its name. Without `prefix`: the
        series `checkpoint` (a checkpoint created without a name), else the
        only series in the directory; with several others (`last` and
        `best`), pass the prefix of the one you want. Temp files of an interrupted save are ignored, and
        so is a file that is not a complete zip archive (torch's format).
        The newest complete file is verified (each entry's CRC, so bit flips
        inside a tensor are found).

        Raises:
            CheckpointError: without `prefix`, the directory holds several
                series and none is named `checkpoint`; or the newest
                complete file is damaged (the error names the one before it).
        """
        directory = Path(dirname)
        if not directory.is_dir():
            return None
        series: dict[str, list[tuple[int, Path]]] = {}
        for path in directory.iterdir():
            match = _FILE_NAME.fullmatch(path.name)
            if match:
                series.setdefault(match.group(1), []).append((int(match.group(2)), path))
        if prefix is None and _DEFAULT_PREFIX in series:
            prefix = _DEFAULT_PREFIX
        if prefix is None:
            if len(series) > 1:
                raise CheckpointError(
                    f"{str(directory)!r} holds several checkpoint series ({', '.join(sorted(series))}); "
                    "pass prefix=... to Checkpoint.latest to say which, e.g. "
                    f"Checkpoint.latest({str(directory)!r}, prefix={sorted(series)[0]!r})"
                )
            numbered = next(iter(series.values()), [])
        else:
            numbered = series.get(prefix, [])
        complete = [path for _, path in sorted(numbered, reverse=True) if zipfile.is_zipfile(path)]
        if complete:
            _verify(complete[0], complete[1] if len(complete) > 1 else None)
            return complete[0]
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
        _verify(path)
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
        # All or nothing: every check runs before anything is restored, so a file that
        # does not fit leaves the State as it was (no counters over fresh weights).
        _check_payload(payload, path)
        problems = _state_problems(state, payload["state"])
        if problems:
            shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit this State, nothing was restored: {shown}; "
                "build the State as it was when the file was saved"
            )
        own_state, own_rng = _this_process_states(payload, path, restore_rng)
        try:
            state.load_state_dict(own_state, strict=strict)
        except FrameError as error:
            add_note(error, f"while loading checkpoint {str(path)!r}")
            raise
        if restore_rng:
            _set_rng_states(own_rng)
        info = ResumeInfo(path, payload["save_number"], payload.get("score"), payload["state"])
        _RESUMED[state] = info
        _announce_resume(state, info)
        return info

    @staticmethod
    def load_weights(
        path: str | os.PathLike[str], model: torch.nn.Module | Any, *, name: str | None = None
    ) -> torch.nn.Module:
        """Load just a model's weights from a checkpoint file into `model`, for inference.

        No State is needed and nothing else is restored. The file holds every
        model of the experiment by component name; with one model, or one
        whose weights fit `model`, no name is needed.

        Args:
            path: a checkpoint file, e.g. a best-model `Checkpoint`'s `last_path`.
            model: the `torch.nn.Module` (or `Model` component) to fill.
            name: the model's component name in the file (`state.<name>`),
                when several saved models fit.

        Returns:
            The module, so `net = Checkpoint.load_weights(path, Net()).eval()` reads naturally.

        Raises:
            CheckpointError: the file holds no such model, or several fit and
                `name` is not given (the names are listed).

        Example:
            >>> import tempfile, torch
            >>> from statefire.frame import State
            >>> from statefire.features import Checkpoint, Model
            >>> with State(), tempfile.TemporaryDirectory() as tmp:
            ...     _ = Model(torch.nn.Linear(2, 1), name="net")
            ...     path = Checkpoint.write(f"{tmp}/c_1.pt")
            ...     fresh = Checkpoint.load_weights(path, torch.nn.Linear(2, 1))
            ...     print(type(fresh).__name__)
            Linear
        """
        module = getattr(model, "module", model) if not isinstance(model, torch.nn.Module) else model
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or a Model, got {type(model).__name__}: {model!r:.60}")
        payload = Checkpoint.read(path)
        components = payload["state"].get("components", {}) if isinstance(payload.get("state"), dict) else {}
        saved = {
            n: c["module"] for n, c in components.items() if isinstance(c, dict) and isinstance(c.get("module"), dict)
        }
        if not saved:
            raise CheckpointError(f"checkpoint {str(path)!r} holds no model weights (no Model component was saved)")
        target = _unwrapped(module)
        if name is None:
            own = {k: tuple(v.shape) for k, v in target.state_dict().items()}
            fitting = [
                n for n, weights in saved.items()
                if {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)} == own
            ]
            if len(fitting) != 1:
                what = "none of them fits the given model" if not fitting else f"{', '.join(fitting)} all fit"
                raise CheckpointError(
                    f"checkpoint {str(path)!r} holds the models {', '.join(sorted(saved))}, and {what}; "
                    "pass name=... (the model's component name) to say which"
                )
            name = fitting[0]
        if name not in saved:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds no model {name!r}; it holds {', '.join(sorted(saved))}"
            )
        try:
            target.load_state_dict(saved[name])
        except RuntimeError as error:
            raise CheckpointError(
                f"the weights of model {name!r} in {str(path)!r} do not fit {type(target).__name__}: "
                f"{str(error).splitlines()[0]}; build the model as it was when the file was saved"
            ) from None
        return module

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
        setattr(writer, "purge_step", step)  # noqa: B010  # a writer found by its attribute, of any class


_DEFAULT_PREFIX = "checkpoint"  # the default name of a Checkpoint, so of its files
_FILE_NAME = re.compile(r"(.+)_(\d+)(?:_score=[-+0-9.eEinfa]+)?\.pt")


#: Files verified unchanged since (path, inode, size, mtime): `latest` then `load` reads the CRCs once.
_VERIFIED: collections.OrderedDict[tuple[str, int, int, int], None] = collections.OrderedDict()


def _verify(path: Path, previous: Path | None = None) -> None:
    """Check every entry's CRC: torch does not, so bit flips inside a tensor would load silently."""
    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key in _VERIFIED:
            return
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise _corrupted(path, error) from None
    if damaged is None:
        _VERIFIED[key] = None
        while len(_VERIFIED) > 16:
            _VERIFIED.popitem(last=False)
    else:
        instead = f"; the file before it is {str(previous)!r}" if previous is not None else ""
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is damaged: entry {damaged!r} does not match its stored CRC "
            f"(bits changed on disk or in a copy), so nothing was loaded; use an older file{instead}"
        )


def _same_place(directory: Path | None) -> Path | None:
    return None if directory is None else Path(os.path.abspath(directory))


def _check_directory(directory: Path) -> None:
    """Refuse a checkpoint directory that is a file (or under one), at construction."""
    for place in (directory, *directory.parents):
        if place.exists():
            if place.is_dir():
                return
            where = "is a file" if place == directory else f"is under {str(place)!r}, which is a file"
            raise NotADirectoryError(
                f"dirname of Checkpoint {str(directory)!r} {where}, not a directory; "
                "give a directory (it is created if needed), e.g. 'checkpoints'"
            )


#: Leaf types the safe loader reads back as they are.
_PLAIN_ATOMS = frozenset({type(None), bool, int, float, str, bytes, torch.Size, torch.dtype, torch.device})


def _plain(value: Any, file: Path, path: str = "") -> Any:
    """`value` with numpy scalars as Python numbers and numpy arrays as tensors, checked loadable.

    A file must never hold what `torch.load(weights_only=True)` refuses: that
    is found out only at resume, when every file is unusable. Anything that is
    not plain data is refused here, naming its path in the state.
    """
    cls = value.__class__
    if cls in _PLAIN_ATOMS or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        items = {key: _plain(item, file, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        for key in items:
            if key.__class__ not in _PLAIN_ATOMS:
                _refuse(key, file, f"{path}[key {key!r}]")
        if cls is dict or cls is collections.OrderedDict:
            return items if cls is dict else collections.OrderedDict(items)
        return _checked(value, file, path)  # a dict subclass: kept only if it loads back
    if cls is list or cls is tuple:
        return cls(_plain(item, file, f"{path}[{i}]") for i, item in enumerate(value))
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return value.item()  # np.float64(1e-3) -> 1e-3, exactly
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
        return torch.from_numpy(np.array(value))  # a copy: the state keeps its own array
    return _checked(value, file, path)


def _checked(value: Any, file: Path, path: str) -> Any:
    """`value` if the safe loader reads it back (a type we do not know), else a clear refusal."""
    buffer = io.BytesIO()
    try:
        torch.save(value, buffer)
        buffer.seek(0)
        torch.load(buffer, weights_only=True)
    except Exception:
        _refuse(value, file, path)
    return value


def _refuse(value: Any, file: Path, path: str) -> None:
    raise CheckpointError(
        f"cannot save checkpoint {str(file)!r}: {path or 'the state'} holds {type(value).__module__}."
        f"{type(value).__qualname__} {value!r:.60}, which the safe loader (torch.load(weights_only=True)) "
        "refuses, so the file could never be loaded; keep plain data in the state (numbers, strings, "
        "lists, dicts, tensors), e.g. convert it in the feature's state_dict"
    )


def _check_payload(payload: dict[str, Any], path: Path) -> None:
    """The checkpoint's own fields: version, save number, state, RNG states."""
    name = str(path)
    for key in ("version", "save_number", "state", "rng"):
        if key not in payload:
            raise CheckpointError(
                f"checkpoint {name!r} has no {key!r} entry (found {sorted(payload)}); it is damaged or was not "
                "written by Checkpoint; use another file"
            )
    version = payload["version"]
    if version != _VERSION:
        raise CheckpointError(
            f"checkpoint {name!r} has format version {version!r}; this statefire reads version {_VERSION}"
            + (
                ": it was written by a newer statefire, upgrade to load it"
                if isinstance(version, int) and version > _VERSION
                else ""
            )
        )
    number = payload["save_number"]
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise CheckpointError(f"checkpoint {name!r}: save_number must be a positive int, found {number!r}")
    if not isinstance(payload["state"], dict):
        raise CheckpointError(f"checkpoint {name!r}: state must be a dict, found {type(payload['state']).__name__}")
    problem = _rng_problem(payload["rng"])
    if problem:
        raise CheckpointError(f"checkpoint {name!r}: {problem}; nothing was restored")


def _rng_problem(rng: Any) -> str | None:
    """Why `rng` cannot be restored, tried on scratch generators so nothing global changes, or None."""
    if not isinstance(rng, dict):
        return f"rng must be a dict of RNG states, found {type(rng).__name__}"
    for key in ("python", "numpy", "torch"):
        if key not in rng:
            return f"rng has no {key!r} state (found {sorted(rng)})"
    try:
        version, internal, gauss = rng["python"]
        random.Random().setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, OverflowError):
        return "rng.python: expected random.getstate() as (version, 625 ints, gauss)"
    try:
        name, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.RandomState().set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    except (TypeError, ValueError, OverflowError):
        return "rng.numpy: expected [name, 624 uint32 keys, pos, has_gauss, cached]"
    state = rng["torch"]
    if not isinstance(state, torch.Tensor):
        return f"rng.torch: expected a uint8 tensor (torch.get_rng_state()), found {type(state).__name__}"
    try:
        torch.Generator().set_state(state)
    except (TypeError, ValueError, RuntimeError):
        return (
            "rng.torch: expected a uint8 tensor like torch.get_rng_state() "
            f"(shape {tuple(torch.get_rng_state().shape)}), "
            f"found {state.dtype} of shape {tuple(state.shape)}"
        )
    if not isinstance(rng.get("cuda", []), list):
        return f"rng.cuda: expected a list of tensors, found {type(rng['cuda']).__name__}"
    return None


def _state_problems(state: State, saved: dict[str, Any]) -> list[str]:
    """Every value of `saved` that the State's features would refuse, as `"<path>: expected ..."`.

    Counters must be non-negative ints; a feature with `check_state_dict(section)`
    (engines, models, optimizers, trainers) checks the rest of its section.
    """
    problems: list[str] = []
    for feature in state.features:
        section = saved.get(feature.category)
        given = section.get(feature.name) if isinstance(section, dict) else None
        if not isinstance(given, dict):
            continue  # missing: the strict key check reports it
        cls = type(feature)
        for key, value in given.items():
            if isinstance(getattr(cls, str(key), None), Counter) and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                problems.append(f"{feature.path}.{key}: expected a counter (an int >= 0), found {value!r:.40}")
        check = getattr(feature, "check_state_dict", None)
        if callable(check):
            problems.extend(check(given))
    return problems


def _corrupted(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(
        f"checkpoint file {str(path)!r} is truncated or corrupted ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}); use an older file, "
        "e.g. the one before it in Checkpoint's directory"
    )


def _rng_states() -> dict[str, Any]:
    """The global RNG states as plain data (numpy's as lists, so weights_only loads them)."""
    name, keys, pos, has_gauss, cached = cast("tuple[str, Any, int, int, float]", np.random.get_state())
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


# -- many processes: every process's RNG states and data position -----------------------------

#: Categories whose state is the same on every process (DistributedDataParallel keeps
#: models and optimizers equal): saved once, from the main process.
_SHARED_CATEGORIES = frozenset({"components"})


def _gather_process_states(state_dict: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every process's RNG states and own feature states, gathered to the main process.

    None in a single process. Each entry holds that process's RNG states and
    its state dict without the models and optimizers: the engines' data
    positions (their order generators), the metrics' partial accumulators,
    whatever else differs between processes. Every process must save at the
    same point (it is a collective); the main process gets the list, the
    others None.
    """
    group = process_group()
    if group is None:
        return None
    own_state = {category: features for category, features in state_dict.items() if category not in _SHARED_CATEGORIES}
    own = {"rng": _rng_states(), "state": own_state}
    rank, world_size = group.get_rank(), group.get_world_size()
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    group.gather_object(own, gathered, dst=0)
    return gathered


def _this_process_states(
    payload: dict[str, Any], path: Path, restore_rng: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state dict and RNG states this process restores: its own entry of a distributed checkpoint.

    A checkpoint from as many processes as now run gives each process its
    own RNG states and data position over the main process's state dict. A
    different number of processes (e.g. a distributed checkpoint loaded in
    one process to evaluate) restores the main process's, with a warning when
    RNG states are restored: the run will not continue exactly.
    """
    processes = payload.get("processes")
    rank, world_size = process_rank()
    saved_size = 1 if not processes else len(processes)
    if saved_size != world_size:
        if restore_rng:
            warnings.warn(
                f"checkpoint {str(path)!r} was saved by {saved_size} process(es) and is loaded by {world_size}: "
                "every process restores the first process's RNG states and data position, so the run "
                f"does not continue exactly; resume with {saved_size} process(es) for an exact resume "
                "(or pass restore_rng=False when only the weights matter)",
                stacklevel=3,
            )
        return payload["state"], payload["rng"]
    if not processes:
        return payload["state"], payload["rng"]
    own = processes[rank]
    state_dict = {category: dict(features) for category, features in payload["state"].items()}
    for category, features in own["state"].items():
        state_dict.setdefault(category, {}).update(features)
    return state_dict, own["rng"]
