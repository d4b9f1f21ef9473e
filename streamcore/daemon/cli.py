"""The ``streamcore`` command: ``run`` a Dataflow or Pipeline, or print its ``plan``.

``main`` never lets an exception escape as a traceback unless asked (``--traceback``),
and always maps the outcome to the exit statuses in ``EPILOG``: supervisors (systemd,
Kubernetes) can then tell "fix the command" (2) from "the job failed" (1). Errors go to
stderr as ``error: ...`` lines; stdout carries only what the command prints (plans,
pipeline progress). ``python -m streamcore`` is the same program.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streamcore.daemon.config import ConfigError, apply_config, parse_restart
from streamcore.daemon.exit_codes import EXIT_FAILED, EXIT_USAGE
from streamcore.daemon.logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from streamcore.errors import (
    GraphError,
    PipelineValidationError,
    StreamcoreError,
    TargetCallError,
    TargetError,
    TargetImportError,
    UsageError,
)

if TYPE_CHECKING:
    from streamcore.dataflow.flow import Dataflow

# What runs a target (asyncio, the runtime, the batch executors) is imported once the
# arguments are parsed, so that ``--help`` and a usage error cost only argparse
# (docs/performance.md#start-up).

__all__ = ["EPILOG", "build_parser", "format_flow_plan", "main"]

EPILOG = """\
targets:
  module:attr         a dotted module importable from the current directory
  path/to/file.py:attr
  attr is a Dataflow, a Pipeline, or a function (sync or async) taking no
  arguments that returns one.

HTTP server:
  run --metrics-port PORT
                  serve /metrics, /healthz, /readyz and a live page at / while a
                  Dataflow or a scheduled pipeline (--schedule, --every) runs

signals:
  SIGTERM/SIGINT  stop: with --state a Dataflow stops at a checkpoint (open windows
                  kept for the next run), without it the records in flight drain;
                  a second signal exits at once
  SIGHUP          read the log level and format again (flags, environment, --config)

exit status:
  0    the flow ended (its sources finished, or SIGTERM/SIGINT stopped it), or the
       pipeline run succeeded
  1    the flow failed, or a pipeline task failed or timed out
  2    usage error, or the target could not be loaded or is invalid
       (nothing ran)
  130  SIGINT twice (or once during a single pipeline run): stopped at once
  143  SIGTERM twice (or once during a single pipeline run): stopped at once
"""


def _version() -> str:
    from streamcore import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``streamcore`` command."""
    parser = argparse.ArgumentParser(
        prog="streamcore",
        description="Run streamcore dataflows and batch pipelines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"streamcore {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Options every command takes, given after the command name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="root log level (default: INFO)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines on stderr as text, or one JSON object per line (default: text)",
    )
    common.add_argument(
        "--traceback",
        action="store_true",
        help="on failure, print the full traceback instead of the error message",
    )

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run a Dataflow or Pipeline until it ends or is signalled",
        description=(
            "Run a Dataflow until its sources end, or until SIGTERM/SIGINT stops its "
            "sources and the records in flight drain (a second signal exits at once). "
            "Run a Pipeline once with progress on stdout, or on a schedule."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("target", metavar="module:attr", help="what to run (see 'targets' below)")
    run.add_argument(
        "--state",
        metavar="URL",
        help="Redis state store, e.g. redis://localhost:6379/0: a Dataflow checkpoints into it "
        "and resumes from its last checkpoint; a pipeline keeps task outputs there (lets --run-id resume)",
    )
    run.add_argument(
        "--checkpoint-interval",
        metavar="DURATION",
        help="Dataflows with --state: time between checkpoints, e.g. 500ms, 10s (default 10s)",
    )
    run.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML file of settings (its [run] table, keys named as these options); flags "
        "win over STREAMCORE_<OPTION> environment variables, which win over the file",
    )
    flows = run.add_argument_group("dataflows only")
    flows.add_argument(
        "--restart",
        metavar="POLICY",
        help="restart a failed flow from its last checkpoint: never (default), fixed:ATTEMPTS:DELAY "
        "(e.g. fixed:5:10s) or exponential:ATTEMPTS[:DELAY[:MAX_DELAY]] (e.g. exponential:10:1s:1m)",
    )
    flows.add_argument(
        "--drain-timeout",
        metavar="DURATION",
        help="bound on a graceful stop (drain, or with --state a stop at a checkpoint), e.g. 30s "
        "(default 30s); past it the flow is cancelled: with --state the next run resumes from the "
        "last complete checkpoint, without it the command exits 1 naming the records lost",
    )
    flows.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=1,
        help="run N processes of a flow whose sources share partitions over a group (e.g. "
        "KafkaSource(group_id=...)), restarting one that fails; with the HTTP server one "
        "/metrics serves them all, labelled worker=\"0\"... (default 1: this process)",
    )
    served = run.add_argument_group("HTTP server (dataflows, and pipelines with --schedule or --every)")
    served.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=int,
        help="serve /metrics (Prometheus), /healthz, /readyz, the live page and /api/graph "
        "(a scheduled pipeline: /api/runs) on this port",
    )
    served.add_argument(
        "--metrics-host",
        metavar="HOST",
        default="127.0.0.1",
        help="address the HTTP server binds (default 127.0.0.1: this machine only)",
    )
    served.add_argument(
        "--api-token",
        metavar="TOKEN",
        help="bearer token for the endpoints that change anything (POST /api/stop); without one "
        "they are disabled. Prefer STREAMCORE_API_TOKEN: flags show in the process list",
    )
    batch = run.add_argument_group("pipelines only")
    batch.add_argument(
        "--run-id",
        metavar="ID",
        help="id of the pipeline run; with --state, a run id seen before resumes after its completed tasks",
    )
    when = batch.add_mutually_exclusive_group()
    when.add_argument(
        "--schedule",
        metavar="CRON",
        help="run the pipeline at every fire time of a five-field cron expression (UTC)",
    )
    when.add_argument(
        "--every",
        metavar="DURATION",
        help="run the pipeline at a fixed interval aligned to the epoch, e.g. 30s, 10m, 1h",
    )
    batch.add_argument(
        "--allow-overlap",
        action="store_true",
        help="with a schedule: start a run even while the previous one is still going",
    )
    batch.add_argument(
        "--catch-up",
        action="store_true",
        help="with a schedule: after fire times missed while a run was going, run once as soon as it ends "
        "(default: skip them)",
    )

    plan = commands.add_parser(
        "plan",
        parents=[common],
        help="print how a Dataflow or Pipeline would run, without running it",
        description=(
            "For a Pipeline: its levels, critical path and width. For a Dataflow: its "
            "stages and the actors they run in (operator chaining, parallelism)."
        ),
    )
    plan.add_argument("target", metavar="module:attr", help="what to plan")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from streamcore.daemon.run import RunOptions, run_target
    from streamcore.daemon.signals import exit_status_for
    from streamcore.daemon.target import load_target
    from streamcore.runtime.loop import run_coroutine

    configure_logging(args.log_level, args.log_format)
    try:
        if args.command == "plan":
            print(_plan(args.target))
            return 0
        if args.workers != 1:
            from streamcore.daemon.workers import run_workers

            raw = list(sys.argv[1:] if argv is None else argv)
            return run_workers(raw, args.workers, args.target, args.metrics_host, args.metrics_port)
        options = RunOptions(
            run_id=args.run_id,
            state_url=args.state,
            cron=args.schedule,
            every=args.every,
            allow_overlap=args.allow_overlap,
            catch_up=args.catch_up,
            checkpoint_interval=args.checkpoint_interval,
            restart=parse_restart(args.restart),
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            api_token=args.api_token,
            drain_timeout=args.drain_timeout,
            reload_logging=lambda: _reload_logging(list(sys.argv[1:] if argv is None else argv)),
        )
        obj = load_target(args.target)
        return run_coroutine(run_target(obj, args.target, options))
    except KeyboardInterrupt:
        # Only before the signal handlers are in place (while importing the target).
        return exit_status_for(signal.SIGINT)
    except (TargetError, UsageError, ConfigError, GraphError, PipelineValidationError) as exc:
        # Nothing ran: the command or the target needs fixing.
        _report(exc, args.traceback)
        if isinstance(exc, TargetImportError | TargetCallError) and not args.traceback:
            print("  (run again with --traceback to see where)", file=sys.stderr)
        return EXIT_USAGE
    except StreamcoreError as exc:
        _report(exc, args.traceback)
        return EXIT_FAILED
    except Exception as exc:
        # Not one of ours to explain: the traceback is the useful part.
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILED


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with defaults from the config file and the environment (config.py)."""
    first = parser.parse_args(argv)
    if first.command != "run":
        return first
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = commands.choices["run"]
    apply_config(run, config_path=first.config)
    return parser.parse_args(argv)


def _reload_logging(argv: list[str]) -> str:
    """SIGHUP: the log level and format again from the flags, environment and config file."""
    args = _parse(build_parser(), argv)
    configure_logging(args.log_level, args.log_format)
    return f"level={args.log_level} format={args.log_format}"


def _report(exc: BaseException, full: bool) -> None:
    if full:
        traceback.print_exception(exc, file=sys.stderr)
        return
    lines = [f"error: {exc}"]
    cause = exc.__cause__
    if cause is not None:
        text = f"{type(cause).__name__}: {cause}"
        if text not in str(exc):
            lines.append(f"  caused by {text}")
    print("\n".join(lines), file=sys.stderr)


def _plan(spec: str) -> str:
    from streamcore.batch.pipeline import Pipeline
    from streamcore.batch.plan import format_plan
    from streamcore.daemon.target import load_target, resolve_target
    from streamcore.runtime.loop import run_coroutine

    obj = load_target(spec)
    target = run_coroutine(resolve_target(obj, spec))
    if isinstance(target, Pipeline):
        return format_plan(target.plan())
    return format_flow_plan(target)


def format_flow_plan(flow: Dataflow) -> str:
    """A Dataflow's stages and the actor groups they run in, as lines of text for people."""
    from streamcore.graph.nodes import MAIN, OpNode
    from streamcore.graph.planner import plan
    from streamcore.graph.validate import validate

    validate(flow)
    physical = plan(flow.nodes, chaining=flow.chaining)
    actors = sum(group.parallelism for group in physical.groups)
    lines = [
        f"dataflow {flow.name!r}: {len(flow.nodes)} stages in {len(physical.groups)} actor groups "
        f"({actors} actors), chaining {'on' if flow.chaining else 'off'}, "
        f"mailbox capacity {flow.mailbox_capacity}",
        "stages:",
    ]
    width = max(len(node.name) for node in flow.nodes)
    for node in flow.nodes:
        kind = node.op if isinstance(node, OpNode) else node.kind
        inputs = ", ".join(up.name if port == MAIN else f"{up.name}.{port}" for up, port in node.inputs)
        arrow = f"  <- {inputs}" if inputs else ""
        lines.append(f"  {node.name:<{width}}  {kind:<12}{arrow}".rstrip())
    lines.append("actor groups:")
    for group in physical.groups:
        lines.append(f"  {group.index}: {group.name}  parallelism {group.parallelism}")
    return "\n".join(lines)
