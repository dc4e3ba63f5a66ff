"""The code snapshot of a run: the work tree as it is on disk, committed beside the user's history.

`take(start, run_id, exclude)` commits the tracked files with their edits and
the untracked files that are not ignored, with HEAD as parent, under
`refs/statefire/runs/<run_id>`. It works on a copy of the index
(`GIT_INDEX_FILE`), so HEAD, the index, the work tree, the stash and every
branch stay as they were; the copy keeps git's stat cache, so only changed
files are hashed (a 2,000-file tree takes a few tens of milliseconds).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["take", "RunWarning", "SnapshotError", "diff", "checkout", "REF_PREFIX", "MAX_UNTRACKED_BYTES"]

REF_PREFIX = "refs/statefire/runs/"
#: An untracked file larger than this is data, not code: left out of the snapshot with a warning.
MAX_UNTRACKED_BYTES = 10 * 1024 * 1024
# The identity of a snapshot commit when the repository has none configured.
_IDENTITY = {"GIT_AUTHOR_NAME": "statefire", "GIT_AUTHOR_EMAIL": "statefire@localhost",
             "GIT_COMMITTER_NAME": "statefire", "GIT_COMMITTER_EMAIL": "statefire@localhost"}


# take() <- Run._open <- Run.__init__ <- the feature's __init__ wrapper <- the user's `Run(...)`
_USER = 5


class RunWarning(UserWarning):
    """Something about a run was not recorded as asked (no git, a file left out, a registry write)."""


class SnapshotError(RuntimeError):
    """A git operation on run snapshots failed (diff, checkout)."""


def _git(args: list[str], cwd: Path | str, env: dict[str, str] | None = None, data: bytes | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=data, capture_output=True, check=False
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["git", *args], result.stdout, result.stderr)
    return result.stdout.decode("utf-8", "surrogateescape").strip()


def _top(start: Path) -> Path | None:
    """The top directory of the git work tree holding `start`, or None (no git, or not a repository)."""
    try:
        return Path(_git(["rev-parse", "--show-toplevel"], start))
    except (OSError, subprocess.CalledProcessError):
        return None


def take(start: str | os.PathLike[str], run_id: str, exclude: list[Path]) -> dict[str, Any] | None:
    """Commit the work tree holding `start` under `refs/statefire/runs/<run_id>`.

    Returns:
        `{"repo", "head", "snapshot", "branch", "dirty"}`, or None without git or
        outside a repository (one `RunWarning` says which).
    """
    start = Path(start)
    if shutil.which("git") is None:
        warnings.warn("git is not installed: this run records no code snapshot", RunWarning, stacklevel=_USER)
        return None
    top = _top(start)
    if top is None:
        warnings.warn(
            f"{str(start)!r} is not in a git work tree: this run records no code snapshot "
            "(run the script from a git repository to have its exact code saved)",
            RunWarning,
            stacklevel=_USER,
        )
        return None
    head: str | None
    try:
        head = _git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], top)
    except subprocess.CalledProcessError:
        head = None  # a repository with no commit yet
    try:
        branch: str | None = _git(["symbolic-ref", "-q", "--short", "HEAD"], top)
    except subprocess.CalledProcessError:
        branch = None  # detached HEAD
    real_index = Path(_git(["rev-parse", "--path-format=absolute", "--git-path", "index"], top))
    with tempfile.TemporaryDirectory(prefix="statefire-index-") as scratch:
        index = Path(scratch) / "index"
        if real_index.is_file():
            shutil.copyfile(real_index, index)  # the stat cache: unchanged files are not hashed again
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        excluded = [p for p in (_inside(top, e) for e in exclude) if p is not None]
        untracked = _git(["ls-files", "-z", "--others", "--exclude-standard", "--", ":/"], top, env)
        for name in filter(None, untracked.split("\0")):
            path = top / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size > MAX_UNTRACKED_BYTES and not any(_under(name, e) for e in excluded):
                warnings.warn(
                    f"untracked file {name!r} ({size / 2**20:.1f} MB) is left out of the code snapshot: "
                    "files over 10 MB are data, not code (commit it, or ignore it in .gitignore)",
                    RunWarning,
                    stacklevel=_USER,
                )
                excluded.append(name)
        # git add refuses an exclude pathspec naming an ignored path; an ignored path is not added anyway
        pathspec = [":/", *(f":(top,exclude,literal){e}" for e in excluded if not _ignored(top, e))]
        _git(["add", "-A", "--ignore-errors", "--", *pathspec], top, env)
        for e in excluded:  # tracked files under the runs root are never part of a snapshot either
            _git(["rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", f":(top,literal){e}"], top, env)
        tree = _git(["write-tree"], top, env)
    commit_env = dict(os.environ)
    if not _has_identity(top):
        commit_env.update(_IDENTITY)
    parents = ["-p", head] if head else []
    snapshot = _git(["commit-tree", tree, *parents, "-m", f"statefire run {run_id}"], top, commit_env)
    _git(["update-ref", f"{REF_PREFIX}{run_id}", snapshot], top)
    dirty = head is None or tree != _git(["rev-parse", f"{head}^{{tree}}"], top)
    return {"repo": str(top), "head": head, "snapshot": snapshot, "branch": branch, "dirty": dirty}


def _ignored(top: Path, name: str) -> bool:
    try:
        _git(["check-ignore", "-q", "--", name], top)
        return True
    except subprocess.CalledProcessError:
        return False


def _has_identity(top: Path) -> bool:
    try:
        _git(["var", "GIT_COMMITTER_IDENT"], top)
        _git(["var", "GIT_AUTHOR_IDENT"], top)
        return True
    except subprocess.CalledProcessError:
        return False


def _inside(top: Path, path: Path) -> str | None:
    """`path` relative to `top` in git's form, or None when it is outside the work tree."""
    try:
        relative = Path(os.path.realpath(path)).relative_to(os.path.realpath(top))
    except ValueError:
        return None
    return relative.as_posix() if relative.parts else None


def _under(name: str, directory: str) -> bool:
    return name == directory or name.startswith(directory.rstrip("/") + "/")


def diff(repo: str, a: str, b: str) -> str:
    """The code diff between two snapshot commits of `repo` (git's unified diff)."""
    try:
        return _git(["diff", "--no-color", a, b], repo)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SnapshotError(f"git diff {a[:12]} {b[:12]} failed in {repo!r}: {_stderr(error)}") from None


def checkout(repo: str, commit: str, destination: Path) -> int:
    """Write the files of snapshot `commit` of `repo` into `destination`; returns how many."""
    try:
        result = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SnapshotError(
            f"cannot read snapshot {commit[:12]} in {repo!r}: {_stderr(error)} (was the repository moved, "
            "or the ref refs/statefire/runs/... deleted?)"
        ) from None
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        members = archive.getmembers()
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
        else:  # Python < 3.12 without the extraction filters: git archive writes only relative paths
            archive.extractall(destination)  # noqa: S202
    return sum(1 for m in members if m.isfile())


def _stderr(error: BaseException) -> str:
    stderr = getattr(error, "stderr", None)
    if isinstance(stderr, bytes):
        return stderr.decode("utf-8", "replace").strip() or str(error)
    return str(error)
