"""``make bench``: every benchmark in one run, each printing its table beside its baselines.

``python -m tests.bench`` runs them all at full size; ``--quick`` runs each on small data (a
smoke run of the harness, not figures to record). Figures for docs/benchmarks.md come from a
full run on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from services.common.retry import one_line

BENCHES = {
    "segment_engine": ("tests.bench.bench_segment_engine", ["--members", "200000", "--orders", "1000000",
                                                            "--matrix-sizes", "1M", "--reps", "3"]),
    "crowds": ("tests.bench.bench_crowds", ["--members", "200000", "--orders", "1000000", "--service-members",
                                            "20000", "--reps", "3"]),
    "ledger": ("tests.bench.bench_ledger", ["--posts", "1000", "--batches", "2", "--batch-size", "1000", "--orders",
                                            "500", "--backend", "sqlite"]),
    "import": ("tests.bench.bench_import", ["--fast-rows", "20000", "--normal-rows", "2000"]),
    "alert": ("tests.bench.bench_alert", ["--orders", "5000", "--members", "500", "--stores", "20",
                                          "--lag-orders", "300"]),
    "gateway": ("tests.bench.bench_gateway", ["--members", "300", "--concurrency", "8", "--seconds", "1"]),
    "freshness": ("tests.bench.bench_freshness", ["--members", "5000", "--events", "1000", "--refresh-members",
                                                  "5000", "--refresh-reps", "5", "--lag-orders", "300",
                                                  "--import-rows", "20000"]),
    "console": ("tests.bench.bench_console", ["--members", "2000", "--reps", "3", "--entries", "21"]),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Crowdpack benchmarks.")
    # No argparse ``choices`` here: Python 3.11 checks an empty ``nargs="*"`` against them and refuses
    # the default (running everything).
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small data: checks the harness, not the figures")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHES)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failed = []
    for name in args.names or list(BENCHES):
        module_name, quick_args = BENCHES[name]
        print(f"\n===== {name} =====", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            code = module.main(quick_args if args.quick else [])
        except Exception as err:  # noqa: BLE001 - one benchmark failing leaves the others to run
            where = traceback.extract_tb(err.__traceback__)[-1]
            print(f"error: {name}: {one_line(err)} ({Path(where.filename).name}:{where.lineno})", file=sys.stderr,
                  flush=True)
            code = 1
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"error: benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    # DuckDB's binding reports every type and function it still holds as "leaked" while the interpreter tears its
    # modules down (a hundred lines with nothing to act on). Every benchmark has ended by now: flush, and end the
    # process without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
