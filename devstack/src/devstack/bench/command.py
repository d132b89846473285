"""The ``bench`` subcommand's arguments and what it writes."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.bench.options import BenchOptions


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the real stack through the gateway; writes docs/benchmarks.md",
        description="Start the stack as `make run` does, seed it through the API, drive it "
        "with wrk (side by side with the official full-stack template's backend when "
        "--template-git is given) and write docs/benchmarks.md, docs/benchmarks.json and "
        "the charts in docs/benchmarks/ (--smoke: a few seconds per scenario, results in "
        ".data/bench-smoke/).",
    )
    bench.add_argument("--smoke", action="store_true", help="seconds-long run for CI")
    bench.add_argument(
        "--template-git",
        type=Path,
        metavar="DIR",
        help="git dir of fastapi/full-stack-fastapi-template: measure it side by side",
    )
    bench.add_argument(
        "--peer-harness",
        type=Path,
        metavar="RUN_SH",
        help="the peer harness's run.sh (default: env PEER_HARNESS, else "
        "../shared/peer-bench/peer-fullstack-template/run.sh from the repository root)",
    )
    bench.add_argument(
        "--rounds", type=int, help="rounds of scenarios 1-7 and of the growth runs (default 2)"
    )
    bench.add_argument("--duration", type=float, help="seconds per scenario run (default 10)")
    bench.add_argument(
        "--growth-sizes",
        help="comma-separated item counts for the growth runs (default 10000,100000,1000000; "
        "empty: skip)",
    )
    bench.add_argument("--data-dir", type=Path, help="bench data folder (wiped first)")
    bench.add_argument("--output-dir", type=Path, help="where the report files go")
    bench.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the stack (repeatable), e.g. AUTH_HASHING_CONCURRENCY=1",
    )
    bench.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only rewrite the Markdown report from an earlier run's JSON",
    )


def options_from(args: argparse.Namespace) -> BenchOptions:
    overrides: dict[str, object] = {}
    if args.template_git is not None:
        overrides["template_git"] = args.template_git.resolve()
    if args.peer_harness is not None:
        overrides["peer_harness"] = args.peer_harness.resolve()
    if args.rounds is not None:
        overrides["repeats"] = args.rounds
        overrides["growth_repeats"] = args.rounds
    if args.duration is not None:
        overrides["duration"] = args.duration
    if args.growth_sizes is not None:
        overrides["growth_sizes"] = tuple(
            int(s.replace("_", "")) for s in args.growth_sizes.split(",") if s.strip()
        )
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir.resolve()
    if args.output_dir is not None:
        overrides["output_dir"] = args.output_dir.resolve()
    env = []
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--env wants NAME=VALUE, not {item!r}")
        env.append((name, value))
    overrides["env"] = tuple(env)
    return BenchOptions.smoke_run(**overrides) if args.smoke else BenchOptions.full(**overrides)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C: the stack and the peer (run.sh stop) are stopped.
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # Imported here: `devstack run` should not pay for the benchmark's imports.
    from devstack.bench.report import with_checks, write_json, write_markdown
    from devstack.bench.runner import run_bench
    from devstack.bench.sidebyside import ratio_table

    options = options_from(args)
    if args.render is not None:
        import json

        results = with_checks(json.loads(args.render.read_text()))
        md_path = args.render.resolve().with_suffix(".md")
        charts_dir = md_path.parent / md_path.stem
    else:
        previous = signal.signal(signal.SIGTERM, _terminate)
        # Ctrl-C interrupts the run even when SIGINT was inherited as ignored (a script's
        # background job starts that way), where Python would not install its own handler.
        previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            results = with_checks(run_bench(options, report=_say))
        except KeyboardInterrupt:
            _say("bench: interrupted; the stack and the peer were stopped, nothing written")
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_sigint)
        json_path = options.output_dir / options.json_name
        write_json(results, json_path)
        _say(f"wrote {json_path}")
        md_path = options.output_dir / options.markdown_name
        charts_dir = options.charts_dir
    # Charts after the stack is gone: matplotlib is imported only now.
    from devstack.bench.charts import render_charts

    charts = render_charts(results, charts_dir)
    _say(f"wrote {', '.join(str(c) for c in charts) or 'no charts (no data for them)'}")
    write_markdown(results, md_path, charts)
    _say(f"wrote {md_path}")
    table = ratio_table(results)
    if table:
        _say("\nours / peer, same run:\n" + "\n".join(table))
    noise = (results.get("side_by_side") or {}).get("noise")
    if noise:
        others = [r["other_cores"] for r in results["side_by_side"]["runs"]]
        _say(
            f"machine noise: {noise['idle_busy_cores_before']:.2f} cores busy with the systems "
            f"idle before the runs, {noise['idle_busy_cores_after']:.2f} after; other CPU "
            f"during the runs {min(others, default=0):.2f} to {max(others, default=0):.2f} "
            "cores\n"
        )
    for check in results["targets"]:
        if check.get("info"):
            mark = "info  "
        else:
            mark = {True: "met   ", False: "MISSED", None: "n/a   "}[check["met"]]
        _say(f"  {mark} {check['target']}: {check['measured']} (goal {check['goal']})")
    return 0
