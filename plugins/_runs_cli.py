"""The `statefire run` and `statefire runs ...` commands (wired into `plugins/cli.py`).

    statefire run SCRIPT.py [--root runs] [--experiment E] [--set PATH=VALUE ...] [-- ARGS]
    statefire runs list [--root runs] [--experiment E] [--status S] [--where EXPR] [--sort KEY] [--limit N]
    statefire runs show ID
    statefire runs compare ID ID [ID ...] [--plot METRIC -o FILE.png]
    statefire runs diff ID ID
    statefire runs checkout ID DIR

Ids are a full id, a unique prefix or `latest`.
"""

from __future__ import annotations

import argparse
import ast
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "run_script", "runs_command", "parse_sets", "Overrides"]


def add_parsers(commands: Any) -> None:
    """Add `run` and `runs` to the `statefire` command's subparsers."""
    run = commands.add_parser("run", help="run a script inside a Run (directory, record, code snapshot)")
    run.add_argument("script", help="the Python script to run, as __main__")
    run.add_argument("--root", default="runs", help="the runs root (default: runs)")
    run.add_argument("--experiment", default="default", help="the experiment's name (default: default)")
    run.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="sets",
                     help="set a Param as soon as its feature exists, e.g. params.hp.lr=0.01 (repeatable)")

    runs = commands.add_parser("runs", help="list, show, compare, diff and check out recorded runs")
    verbs = runs.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        parser = verbs.add_parser(name, help=help)
        parser.add_argument("--root", default="runs", help="the runs root (default: runs)")
        return parser

    listing = verb("list", "the runs, newest first, with their final metrics")
    listing.add_argument("--experiment", help="only this experiment")
    listing.add_argument("--status", help="only this status (running, completed, failed, interrupted, lost)")
    listing.add_argument("--where", help="comparisons joined by ',', e.g. 'hp.lr<0.01,status=completed'")
    listing.add_argument("--sort", help="a field, param or metric to sort by; '-KEY' sorts descending")
    listing.add_argument("--limit", type=int, help="show at most N runs")
    verb("show", "one run: record, params, metrics, series, files").add_argument("id")
    compare = verb("compare", "params and final metrics of runs side by side, the differing ones first")
    compare.add_argument("ids", nargs="+", metavar="ID")
    compare.add_argument("--plot", metavar="METRIC", help="overlay this metric's series of every run")
    compare.add_argument("-o", "--output", default="compare.png", help="the picture for --plot (default: compare.png)")
    diff = verb("diff", "the code diff between two runs' snapshots, then their param diff")
    diff.add_argument("ids", nargs=2, metavar="ID")
    checkout = verb("checkout", "write a run's exact code (its snapshot) into a directory")
    checkout.add_argument("id")
    checkout.add_argument("directory", metavar="DIR")


def _fail(message: str, status: int = 1) -> int:
    print(f"statefire: {message}", file=sys.stderr)
    return status


# -- statefire run -----------------------------------------------------------------------
def parse_sets(items: list[str]) -> dict[str, Any]:
    """`["params.hp.lr=0.01"]` -> `{"params.hp.lr": 0.01}`: the value as a Python literal, else a string.

    Raises:
        ValueError: an item without `=` or with an empty path.
    """
    sets: dict[str, Any] = {}
    for item in items:
        path, equals, raw = item.partition("=")
        path = path.strip()
        if not equals or not path:
            raise ValueError(f"--set {item!r} is not PATH=VALUE; write e.g. --set params.hp.lr=0.01")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        sets[path] = value
    return sets


class Overrides:
    """Sets each `category.feature.param` as soon as that feature is added to the State."""

    def __init__(self, state: Any, sets: dict[str, Any]) -> None:
        self.state = state
        self.pending = dict(sets)
        self.applied: dict[str, Any] = {}
        self.problems: list[str] = []
        categories = set()
        for path in sets:
            parts = path.split(".")
            if len(parts) != 3 or not all(p.isidentifier() for p in parts):
                self.problems.append(f"--set path {path!r} is not CATEGORY.FEATURE.PARAM (e.g. params.hp.lr)")
                del self.pending[path]
                continue
            categories.add(parts[0])
        for category in sorted(categories):
            # Any category: a standard one, or one the script's own features declare later
            # (unknown ones are reported after the script, with the categories it did use).
            container = state.container(category)  # created now, so its `added` fires for the script's features
            for feature in list(container):
                self.apply(feature)
            container.added_ref.attach(self.apply)

    def apply(self, feature: Any) -> None:
        from statefire.frame import Param

        for path in [p for p in self.pending if p.startswith(f"{feature.category}.{feature.name}.")]:
            name = path.rsplit(".", 1)[1]
            declared = type(feature).state_objects().get(name)
            if not isinstance(declared, Param):
                continue  # reported after the script as a path no feature declared
            setattr(feature, name, self.pending.pop(path))
            self.applied[path] = getattr(feature, name)

    def unknown(self) -> str | None:
        """The error for paths never applied (with close names), or None."""
        from statefire.frame import did_you_mean
        from statefire.frame.feature import STANDARD_CATEGORIES

        lines = list(self.problems)
        known = list(self.state.config())
        used = {c.category for c in self.state.containers if len(c)} | set(STANDARD_CATEGORIES)
        for path in self.pending:
            category = path.split(".", 1)[0]
            if category not in used:
                lines.append(f"--set {path}: there is no category {category!r}; " + did_you_mean(category, used))
            else:
                lines.append(f"--set {path}: no feature declared this Param; " + did_you_mean(path, known))
        return "; ".join(lines) or None


def run_script(args: argparse.Namespace, script_args: list[str]) -> int:
    """`statefire run`: the script as __main__ inside a Run; 0 when it completed."""
    try:
        sets = parse_sets(args.sets)
    except ValueError as error:
        return _fail(str(error), 2)
    from statefire.frame import state

    from . import runs as runs_module

    saved_defaults = dict(runs_module._cli_defaults)
    runs_module._cli_defaults.update(root=args.root, experiment=args.experiment)
    try:
        return _run_script(args, script_args, sets, state)
    finally:
        runs_module._cli_defaults.clear()
        runs_module._cli_defaults.update(saved_defaults)


def _run_script(args: argparse.Namespace, script_args: list[str], sets: dict[str, Any], state: Any) -> int:
    from .runs import Run

    overrides = Overrides(state, sets)

    def ensure_run() -> None:
        if not any(isinstance(f, Run) for f in state.features):
            Run(args.root, experiment=args.experiment)

    def follow(engine: Any) -> None:
        engine.n_run_started_ref.attach(ensure_run, priority=10_000)

    for engine in list(state.engines):
        follow(engine)
    state.engines.added_ref.attach(follow)
    code, error = _execute(args.script, script_args)
    run = next((f for f in state.features if isinstance(f, Run)), None)
    if error is None and run is None and not len(state.engines):
        return _fail(f"{args.script} made no engine: `statefire run` runs statefire scripts, which create "
                     "engines (Engine, SupervisedTrainer) and run them", 1)
    unknown = overrides.unknown()
    if unknown is not None:
        _fail(unknown)
        if run is None:
            try:
                run = Run(args.root, experiment=args.experiment)
            except Exception as problem:  # e.g. the registry is read-only: the --set error is the news
                _fail(f"the run could not be recorded: {problem}")
                return 1
        error = error or ValueError(unknown)
        code = code or 1
    if run is None:
        return code or 1
    if error is None and code:
        error = RuntimeError(f"the script exited with status {code}")
    run._finish_quietly(error)
    print(f"statefire: run {run.id} {run.status}: {run.dir}")
    return code


def _execute(script: str, script_args: list[str]) -> tuple[int, BaseException | None]:
    """Run `script` as `__main__`; its exit status and the exception it ended on (reported)."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
        return 0, None
    except SystemExit as exit:
        code = exit.code
        return (code if isinstance(code, int) else (0 if code is None else 1)), None
    except BaseException as error:  # KeyboardInterrupt included: the run is marked interrupted
        traceback.print_exc()
        return (130 if isinstance(error, KeyboardInterrupt) else 1), error
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path


# -- statefire runs ... ------------------------------------------------------------------------
def runs_command(args: argparse.Namespace) -> int:
    """`statefire runs VERB`; a bad id or an unreadable registry is a message and status 1."""
    from ._snapshot import SnapshotError
    from .registry import Registry, RegistryError, UnknownRunError

    registry = Registry(args.root)
    try:
        return {"list": _list, "show": _show, "compare": _compare, "diff": _diff, "checkout": _checkout}[args.verb](
            registry, args
        )
    except (UnknownRunError, RegistryError, SnapshotError, ValueError) as error:
        return _fail(str(error).strip("'\""))


def _short_time(iso: str | None) -> str | None:
    return None if not iso else iso[:19].replace("T", " ")


def _list(registry: Any, args: argparse.Namespace) -> int:
    from .registry import parse_where

    records = registry.runs(experiment=args.experiment, status=args.status)
    if args.where:
        keep = parse_where(args.where, records)
        records = [r for r in records if keep(r)]
    if args.sort:
        key = args.sort.lstrip("-")
        records = _sorted(records, key, descending=args.sort.startswith("-"))
    if args.limit is not None:
        records = records[: max(args.limit, 0)]
    if not records:
        print(f"no runs under {str(registry.root)!r}" + (" match" if (args.where or args.status) else ""))
        return 0
    from collections import Counter as Tally

    from ._table import table

    metrics = [m for m, _ in Tally(m for r in records for m in r.metrics).most_common(4)]
    headers = ["id", "experiment", "name", "status", "started", "duration_s", *metrics]
    rows = [[r.id, r.experiment, r.name, r.status, _short_time(r.started), r.duration,
             *(r.metrics.get(m) for m in metrics)] for r in records]
    print(table(headers, rows))
    return 0


def _sorted(records: list[Any], key: str, descending: bool) -> list[Any]:
    from .registry import parse_where

    parse_where(f"{key}!=None", records)  # an unknown key is an error naming close ones

    def value(record: Any) -> Any:
        if key in ("id", "experiment", "name", "status", "started", "duration"):
            return getattr(record, key)
        for mapping in (record.params, record.metrics):
            for k, v in mapping.items():
                if k == key or k.endswith("." + key):
                    return v
        return None

    present = [r for r in records if value(r) is not None]
    absent = [r for r in records if value(r) is None]
    try:
        present.sort(key=value, reverse=descending)
    except TypeError:
        present.sort(key=lambda r: str(value(r)), reverse=descending)
    return present + absent


def _show(registry: Any, args: argparse.Namespace) -> int:
    from ._table import table

    r = registry.get(args.id)
    lines = [f"run {r.id}" + (f"  ({r.name})" if r.name else ""),
             f"  experiment  {r.experiment}", f"  status      {r.status}",
             f"  started     {r.started}", f"  ended       {r.ended or '-'}",
             f"  duration    {r.duration if r.duration is None else f'{r.duration:.1f} s'}",
             f"  host, pid   {r.host}, {r.pid}", f"  dir         {r.dir}"]
    if r.error:
        lines.append(f"  error       {r.error.get('type')}: {r.error.get('message')}")
    if r.git:
        g = r.git
        lines.append(f"  git         snapshot {g.get('snapshot')} of {g.get('repo')}")
        lines.append(f"              head {g.get('head')} on {g.get('branch') or '(detached)'}"
                     + (", with uncommitted changes" if g.get("dirty") else ""))
    else:
        lines.append("  git         (no code snapshot)")
    print("\n".join(lines))
    if r.params:
        print("\nparams\n" + table(["path", "value"], sorted(r.params.items())))
    if r.metrics:
        print("\nmetrics (final)\n" + table(["metric", "value"], sorted(r.metrics.items())))
    keys = r.series_keys()
    if keys:
        rows = []
        for key in keys:
            points = r.series(key)
            rows.append([key, len(points), points[-1][0], points[-1][1]])
        print("\nseries\n" + table(["key", "points", "last step", "last value"], rows))
    if r.dir.is_dir():
        print("\nfiles\n  " + "  ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in r.dir.iterdir())))
    return 0


def _compare(registry: Any, args: argparse.Namespace) -> int:
    comparison = registry.compare(args.ids)
    print(comparison)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(8, 5))
        drawn = 0
        for run_id in comparison.ids:
            record = registry.get(run_id)
            if args.plot not in record.series_keys():
                print(f"statefire: run {run_id} has no series {args.plot!r}; left out of the plot", file=sys.stderr)
                continue
            points = record.series(args.plot)
            axes.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=record.name or run_id)
            drawn += 1
        if not drawn:
            plt.close(figure)
            keys = sorted({k for i in comparison.ids for k in registry.get(i).series_keys()})
            return _fail(f"no compared run has a series {args.plot!r}; series recorded: {', '.join(keys) or 'none'}")
        axes.set_xlabel("step")
        axes.set_ylabel(args.plot)
        axes.set_title(f"{args.plot} of {drawn} runs")
        axes.legend()
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(args.output, dpi=100)
        plt.close(figure)
        print(f"statefire: wrote {args.output}")
    return 0


def _snapshots(registry: Any, ids: list[str]) -> list[Any]:
    records = [registry.get(i) for i in ids]
    for r in records:
        if not r.git or not r.git.get("snapshot"):
            raise ValueError(f"run {r.id} has no code snapshot (it ran outside a git work tree, or with snapshot=False)")
    return records


def _diff(registry: Any, args: argparse.Namespace) -> int:
    from . import _snapshot
    from ._table import table

    a, b = _snapshots(registry, args.ids)
    code = _snapshot.diff(a.git["repo"], a.git["snapshot"], b.git["snapshot"])
    print(f"code: {a.id} ({a.git['snapshot'][:10]}) -> {b.id} ({b.git['snapshot'][:10]})")
    print(code if code else "(no code difference)")
    rows = [row for row in registry.compare([a.id, b.id]) if row.differs]
    print("\nparams and metrics that differ")
    print(table(["key", a.id, b.id], [(r.key, *r.values) for r in rows]) if rows else "(none)")
    return 0


def _checkout(registry: Any, args: argparse.Namespace) -> int:
    from . import _snapshot

    (record,) = _snapshots(registry, [args.id])
    destination = Path(args.directory)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ValueError(f"{args.directory!r} exists and is not an empty directory; give a new or empty one")
    count = _snapshot.checkout(record.git["repo"], record.git["snapshot"], destination)
    print(f"statefire: wrote the code of run {record.id} (snapshot {record.git['snapshot'][:10]}, "
          f"{count} files) to {args.directory}")
    return 0
