"""The ``bench`` subcommand's arguments and what it writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from devstack.bench.options import BenchOptions


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the real stack through the gateway; writes docs/benchmarks.md",
        description="Start the stack, seed it through the API, drive it with wrk and write "
        "docs/benchmarks.md and docs/benchmarks.json (--smoke: a few seconds per scenario, "
        "results in .data/bench-smoke/).",
    )
    bench.add_argument("--smoke", action="store_true", help="seconds-long run for CI")
    bench.add_argument("--workers", type=int, help="uvicorn workers per service (default 2)")
    bench.add_argument("--rounds", type=int, help="rounds of every scenario (default 3)")
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
    if args.workers is not None:
        overrides["workers"] = args.workers
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


def run(args: argparse.Namespace) -> int:
    # Imported here: `devstack run` should not pay for the benchmark's imports.
    from devstack.bench.report import with_checks, write_json, write_markdown
    from devstack.bench.runner import run_bench

    options = options_from(args)
    if args.render is not None:
        import json

        results = with_checks(json.loads(args.render.read_text()))
    else:
        results = with_checks(run_bench(options, report=_say))
        json_path = options.output_dir / options.json_name
        write_json(results, json_path)
        _say(f"wrote {json_path}")
    md_path = options.output_dir / options.markdown_name
    write_markdown(results, md_path)
    _say(f"wrote {md_path}")
    for check in results["targets"]:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[check["met"]]
        _say(f"  {mark} {check['target']}: {check['measured']} (goal {check['goal']})")
    return 0
