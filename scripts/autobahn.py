#!/usr/bin/env python3
"""Runs the Autobahn TestSuite's fuzzingclient cases (through PyPI `kosoku`) against a
WebSocket URL, prints one summary line `AUTOBAHN {json}` and exits 1 when any case failed.

Usage: scripts/autobahn.py ws://127.0.0.1:PORT/v1/echo [--exclude GLOB ...] [--include GLOB ...]
       [--concurrency N] [--all]

By default the 9.x (performance: messages up to 16 MiB, minutes per group), 12.x and 13.x
(permessage-deflate, which ChatGateway does not negotiate) groups are skipped; `--all` runs
them too. docs/RELIABILITY.md lists the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

DEFAULT_EXCLUDES = ["9.*", "12.*", "13.*"]


async def run(url: str, include: list[str] | None, exclude: list[str], concurrency: int) -> tuple[list, bool]:
    from kosoku import FailureError, run_fuzzingclient

    try:
        return list(await run_fuzzingclient(url, include, exclude, concurrency=concurrency)), False
    except FailureError as failure:
        return list(failure.results), True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--include", action="append")
    parser.add_argument("--exclude", action="append")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--all", action="store_true", help="do not skip 9.x, 12.x, 13.x")
    args = parser.parse_args()
    exclude = (args.exclude or []) + ([] if args.all else DEFAULT_EXCLUDES)
    try:
        import kosoku  # noqa: F401
    except ImportError:
        print("AUTOBAHN " + json.dumps({"error": "kosoku is not installed (scripts/setup-reliab.sh)"}))
        return 2
    started = time.monotonic()
    results, failed_run = asyncio.run(run(args.url, args.include, exclude, args.concurrency))
    behaviors: dict[str, int] = {}
    for result in results:
        label = result.behavior.value
        behaviors[label] = behaviors.get(label, 0) + 1
    failed = [
        {
            "case": r.case_id,
            "behavior": r.behavior.value,
            "close": r.behavior_close.value,
            "remote_close_code": r.remote_close_code,
            "result": r.result,
            "result_close": r.result_close,
        }
        for r in results
        if not r.passed
    ]
    summary = {
        "cases": len(results),
        "passed": sum(1 for r in results if r.passed),
        "failed": len(failed),
        "behaviors": behaviors,
        "non_strict": [r.case_id for r in results if r.behavior.value == "NON-STRICT"],
        "excluded": exclude,
        "seconds": round(time.monotonic() - started, 1),
        "failures": failed,
    }
    print("AUTOBAHN " + json.dumps(summary))
    sys.stdout.flush()
    return 1 if failed or failed_run or not results else 0


if __name__ == "__main__":
    sys.exit(main())
