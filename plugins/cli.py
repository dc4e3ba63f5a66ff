"""The `statefire` command: run a script, then show its state.

    statefire graph SCRIPT.py -o flow.png [--full] [--traced] [-- SCRIPT ARGS]
    statefire trace SCRIPT.py -o trace.json [--max-events N] [--top N] [-- SCRIPT ARGS]
    statefire tree show DIR [--metric NAME]
    statefire run SCRIPT.py [--root runs] [--experiment E] [--set PATH=VALUE ...] [-- SCRIPT ARGS]
    statefire runs list|show|compare|diff|checkout ...   (see plugins/_runs_cli.py)

The script runs as `__main__` (like `python SCRIPT.py`), in the global
`frame.state`. If it raises, the graph or trace of what ran so far is still
written, then the error is reported and the exit status is 1; so is it on
Ctrl-C (exit status 130) and on `sys.exit(...)` (its message printed, its
status kept). The output is checked writable before the script runs.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import traceback
from collections.abc import Callable, Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statefire",
        description="Run a statefire script, then draw its data flow or trace its events.",
        epilog="Arguments after `--` are passed to the script.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    graph = commands.add_parser("graph", help="run a script, then save the data-flow graph of its state")
    graph.add_argument("script", help="the Python script to run")
    graph.add_argument("-o", "--output", default="flow.png",
                       help="where to write: .png, .svg, .pdf, .dot, .mmd or .graphml (default: flow.png)")
    graph.add_argument("--full", action="store_true", help="show every state object, not only the wired ones")
    graph.add_argument("--traced", action="store_true",
                       help="trace the run and add the `sets` edges it observed")

    trace = commands.add_parser("trace", help="run a script under an EventTrace and save a Chrome/Perfetto trace")
    trace.add_argument("script", help="the Python script to run")
    trace.add_argument("-o", "--output", default="trace.json", help="the trace file to write (default: trace.json)")
    trace.add_argument("--max-events", type=_counted(1), default=1_000_000, help="spans kept (default: 1000000)")
    trace.add_argument("--top", type=_counted(0), default=15,
                       help="callbacks shown in the printed summary (default: 15)")
    _add_tree_parser(commands)
    _add_runs_parsers(commands)
    return parser


def _add_runs_parsers(commands: argparse._SubParsersAction) -> None:
    """`statefire run` and `statefire runs ...` (runs and the registry)."""
    from . import _runs_cli

    _runs_cli.add_parsers(commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `statefire` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, script_args = argv[:split], argv[split + 1:]
    args = _parser().parse_args(argv)
    if args.command == "tree":
        return _tree(args)
    if args.command == "runs":
        return _runs(args)
    if not os.path.isfile(args.script):
        print(f"statefire: no such script: {args.script}", file=sys.stderr)
        return 2
    if args.command == "graph":
        return _graph(args, script_args)
    if args.command == "run":
        return _run_in_run(args, script_args)
    return _trace(args, script_args)


def _run_in_run(args: argparse.Namespace, script_args: list[str]) -> int:
    from . import _runs_cli

    return _runs_cli.run_script(args, script_args)


def _runs(args: argparse.Namespace) -> int:
    from . import _runs_cli

    return _runs_cli.runs_command(args)


def _graph(args: argparse.Namespace, script_args: list[str]) -> int:
    from statefire.frame import state

    from .dataflow import DataFlowGraph
    from .trace import EventTrace

    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".png", ".svg", ".pdf", ".dot", ".gv", ".mmd", ".mermaid", ".graphml"):
        print(f"statefire: cannot write a graph as {args.output!r}; use .png, .svg, .pdf, .dot, .mmd or .graphml",
              file=sys.stderr)
        return 2
    if not _writable(args.output):
        return 2
    trace = EventTrace(state) if args.traced else None
    status = _run(args.script, script_args, trace)
    if not state.features:
        print(f"statefire: {args.script} left no feature in the global state (features created inside "
              "`with State():` are not seen); nothing to draw", file=sys.stderr)
        return status or 1
    flow = DataFlowGraph(state, trace=trace)
    flow.save(args.output, full=args.full)
    print(f"statefire: wrote {args.output} ({flow})")
    return status


def _trace(args: argparse.Namespace, script_args: list[str]) -> int:
    from statefire.frame import state

    from .trace import EventTrace

    if not _writable(args.output):
        return 2
    trace = EventTrace(state, max_events=args.max_events)
    status = _run(args.script, script_args, trace)
    trace.to_chrome_trace(args.output)
    summary = trace.summary()
    shown = type(summary)(summary[: args.top])
    if shown:
        print(shown)
    n_events = sum(trace.counts().values())
    dropped = f"; the oldest {trace.dropped} spans were dropped (raise --max-events)" if trace.dropped else ""
    print(f"statefire: wrote {args.output}: {n_events} events{dropped}; open it in https://ui.perfetto.dev")
    return status


def _add_tree_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tree = commands.add_parser("tree", help="inspect an experiment tree")
    verbs = tree.add_subparsers(dest="tree_command", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="print the tree: each node's step, status, short id, metrics and duration")
    show.add_argument("dir", help="the tree's directory (the one given to ExperimentTree)")
    show.add_argument("--metric", action="append", metavar="NAME",
                      help="show only this metric (repeat for several; default: every metric)")


def _tree(args: argparse.Namespace) -> int:
    """`statefire tree show DIR [--metric NAME]`."""
    from .trees import ExperimentTree

    try:
        tree = ExperimentTree.load(args.dir)
    except FileNotFoundError as error:
        print(f"statefire: {error}", file=sys.stderr)
        return 2
    print(tree.format(metrics=args.metric))
    known = {name for node in tree.nodes for name in node.metrics}
    unknown = [name for name in args.metric or () if name not in known]
    if unknown:
        print(f"statefire: no node has the metric(s) {', '.join(unknown)}; metrics in this tree: "
              f"{', '.join(sorted(known)) or 'none'}", file=sys.stderr)
        return 1
    return 0


def _run(script: str, script_args: list[str], trace: object | None) -> int:
    """Run `script` as `__main__`; its exit status: 0 if it finished, 1 if it raised (reported),
    the code of its `sys.exit` (a message is printed, as Python does), 130 on Ctrl-C."""
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    if trace is not None:
        trace.start()  # type: ignore[attr-defined]
    try:
        runpy.run_path(script, run_name="__main__")
        return 0
    except SystemExit as exit:
        code = exit.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # `sys.exit("message")`: Python prints it and exits with 1
        return 1
    except KeyboardInterrupt:
        print(f"statefire: {script} interrupted (Ctrl-C); writing what ran until then", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(f"statefire: {script} raised; writing what ran until then", file=sys.stderr)
        return 1
    finally:
        if trace is not None:
            trace.stop()  # type: ignore[attr-defined]
        sys.argv, sys.path[:] = saved_argv, saved_path


def _counted(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int of at least `minimum`, else a usage error naming the value."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    count.__name__ = "count"
    return count


def _writable(output: str) -> bool:
    """Whether `output` can be written, checked before the script runs (which may take hours)."""
    directory = os.path.dirname(os.path.abspath(output))
    problem = None
    if os.path.isdir(output):
        problem = "is a directory; give a file name"
    elif not os.path.isdir(directory):
        problem = f"is in {directory!r}, which does not exist; create it first"
    elif not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(output) and not os.access(output, os.W_OK)):
        problem = "cannot be written (no permission); choose another place"
    if problem is None:
        return True
    print(f"statefire: output {output!r} {problem}; the script was not run", file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(main())
