"""`main()`: a script's command line — which engines to run, params to set, which run to resume.

Put `statefire.plugins.main()` at the end of a script that builds its features:

    python train.py                                  # the engines that follow no other, inside a new Run
    python train.py --set params.hp.lr=0.01          # ... with a param changed
    python train.py val_evaluator --resume latest    # the newest run's newest checkpoint, then only that engine
    python train.py --help                           # the script's engines and params
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from statefire.frame import State

__all__ = ["main"]


def _describe(state: State) -> str:
    engines = list(state.engines) if "engines" in {c.category for c in state.containers} else []
    lines = ["engines (run by default: the ones that follow no other):"]
    for engine in engines:
        follows = f"runs on {engine.run_on.path}" if engine.run_on is not None else "run by default"
        lines.append(f"  {engine.name:<24} {follows}")
    lines.append("params (--set PATH=VALUE):")
    for path, value in state.config().items():
        lines.append(f"  {path:<40} {value!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, state: State | None = None, snapshot: bool = True) -> Any:
    """Run this script's engines from its command line, inside a Run; returns the Run.

    `python script.py [ENGINE ...] [--set PATH=VALUE ...] [--resume ID|latest]
    [--root runs] [--experiment E]`. With no ENGINE, the engines that follow
    no other (the trainer) run; named engines run alone, in order. With
    `--resume`, that run continues in its directory, from the newest
    checkpoint in `run.dir / "checkpoints"` when there is one. `--help` lists
    the engines and the params.

    Args:
        argv: the arguments (default `sys.argv[1:]`).
        state: the State holding the script's features (default: the current one).
        snapshot: give a new Run a code snapshot (see `Run`).

    Raises:
        SystemExit: for `--help` (status 0) and for bad arguments (status 2,
            with a message naming the engine or param and the close names).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput
        >>> from statefire.plugins import main
        >>> with tempfile.TemporaryDirectory() as root, State():
        ...     trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 3.0])
        ...     _ = AverageOutput(engine=trainer, name="mean")
        ...     run = main(["--set", "engines.trainer.n_epochs=2", "--root", root], snapshot=False)
        ...     print(run.status, trainer.n_epoch_completed, run.record["metrics"])
        completed 2 {'mean': 2.0}
    """
    from statefire.frame import did_you_mean

    from ._runs_cli import parse_sets
    from .runs import Run

    state = state or State.current()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=os.path.basename(sys.argv[0]) or "script.py",
        description="Run this script's engines inside a statefire Run.",
        epilog=_describe(state),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("engines", nargs="*", metavar="ENGINE", help="engines to run (default: those following no other)")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="sets",
                        help="set a param before running, e.g. params.hp.lr=0.01 (repeatable)")
    parser.add_argument("--resume", metavar="ID", help="continue that run (an id, a unique prefix or 'latest')")
    parser.add_argument("--root", default="runs", help="the runs root (default: runs)")
    parser.add_argument("--experiment", default="default", help="the experiment (default: default)")
    args = parser.parse_args(argv)

    engines = {e.name: e for e in state.features if e.category == "engines"}
    if not engines:
        parser.error("this script made no engine before calling statefire.plugins.main(); create the engines "
                     "(Engine, SupervisedTrainer, ...) first")
    for name in args.engines:
        if name not in engines:
            parser.error(f"no engine {name!r} in this script; " + did_you_mean(name, engines))
    try:
        sets = parse_sets(args.sets)
    except ValueError as error:
        parser.error(str(error))
    features = {f"{f.category}.{f.name}": f for f in state.features}
    config = state.config()
    for path, value in sets.items():
        if path not in config:
            parser.error(f"--set {path}: no such param; " + did_you_mean(path, config))
        owner, name = path.rsplit(".", 1)
        setattr(features[owner], name, value)

    run = next((f for f in state.features if isinstance(f, Run)), None)
    if run is None:
        with _current(state):
            run = Run(args.root, experiment=args.experiment, resume=args.resume, snapshot=snapshot)
    elif args.resume is not None:
        parser.error(f"the script made its own Run ({run.id}); pass resume={args.resume!r} to it instead of --resume")
    targets = [engines[n] for n in args.engines] or [e for e in engines.values() if e.run_on is None]
    try:
        if args.resume is not None:
            _restore(run, state, parser, named=bool(args.engines))
        for engine in targets:
            engine.run()
    except BaseException as error:
        run.finish(error)
        raise
    run.finish()
    return run


def _restore(run: Any, state: State, parser: argparse.ArgumentParser, named: bool) -> None:
    from statefire.features import Checkpoint

    latest = Checkpoint.latest(run.dir / "checkpoints")
    if latest is None:
        if named:
            parser.error(f"run {run.id} has no checkpoint in {str(run.dir / 'checkpoints')!r} to run the engines on")
        return  # nothing saved yet: the run starts over in its own directory
    Checkpoint.load(latest, state=state)
    print(f"statefire: run {run.id} resumed from {latest}", file=sys.stderr)


class _current:
    """Make `state` the current State for a block (a no-op when it already is)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.entered = False

    def __enter__(self) -> None:
        if State.current() is not self.state:
            self.state.__enter__()
            self.entered = True

    def __exit__(self, *exc: object) -> None:
        if self.entered:
            self.state.__exit__(*exc)
