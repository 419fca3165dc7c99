#!/usr/bin/env python3
"""Runs the Autobahn TestSuite's fuzzingclient cases (through PyPI `kosoku`) against a
WebSocket URL, prints one summary line `AUTOBAHN {json}` and exits 1 when any case failed.

Usage: scripts/autobahn.py ws://127.0.0.1:PORT/v1/echo [--exclude GLOB ...] [--include GLOB ...]
       [--concurrency N] [--quick | --all]

By default the 12.x and 13.x groups (permessage-deflate, which ChatGateway does not negotiate:
every case would be UNIMPLEMENTED) are skipped; `--quick` also skips 9.x (performance: messages
up to 16 MiB, about 40 s of the run); `--all` skips nothing. docs/RELIABILITY.md lists the
results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

DEFAULT_EXCLUDES = ["12.*", "13.*"]
QUICK_EXCLUDES = ["9.*"]


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
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="also skip 9.x (performance)")
    parser.add_argument("--all", action="store_true", help="skip nothing (12.x and 13.x then fail as UNIMPLEMENTED)")
    args = parser.parse_args()
    exclude = (args.exclude or []) + ([] if args.all else DEFAULT_EXCLUDES) + (QUICK_EXCLUDES if args.quick else [])
    try:
        import kosoku  # noqa: F401
    except ImportError:
        print("AUTOBAHN " + json.dumps({"error": "kosoku is not installed (scripts/setup-reliab.sh)"}))
        return 2
    started = time.monotonic()
    results, failed_run = asyncio.run(run(args.url, args.include, exclude, args.concurrency))
    # A case whose verdict depends on timing (the server must close within 1 s of the last
    # chop, 6.4.3/6.4.4; a handshake under a 16 MiB 9.x neighbour) can miss on a loaded 2-core
    # machine: each failed case runs once more, alone; it fails only if it fails again.
    retried = [r.case_id for r in results if not r.passed]
    if retried:
        again, _ = asyncio.run(run(args.url, retried, [], 1))
        by_id = {r.case_id: r for r in again}
        results = [by_id.get(r.case_id, r) if not r.passed else r for r in results]
        failed_run = False
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
        "retried": retried,
        "seconds": round(time.monotonic() - started, 1),
        "failures": failed,
    }
    print("AUTOBAHN " + json.dumps(summary))
    sys.stdout.flush()
    return 1 if failed or failed_run or not results else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: kosoku's native runtime can still have threads then, and
    # tearing the interpreter down under them has ended the process with a signal after the
    # summary was printed (CI saw the status of a signal with every case passed).
    os._exit(code)
