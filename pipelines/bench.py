"""Benchmark: prints figures, asserts nothing (machines are shared and noisy).

    .venv/bin/python -m pipelines.bench --returns 100000      # or: make bench BENCH_ARGS="--returns 100000"

Generates (or reuses) a world of N returns, serves it with the WMS emulator in a separate
process (so its memory is not counted), then runs through Dagster, in this process:
  1. business date D-1 on an empty warehouse (the full first load),
  2. business date D (a quiet next day: only what changed since),
and prints wall time, peak memory (max RSS of this process), WMS API requests per asset
against the minimum (pages needed at 100 items per page), and the per-rule result of D.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 600.0) -> None:
    import requests
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError(f"emulator did not start: {url}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--returns", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 3, 31))
    parser.add_argument("--world", type=Path, help="world directory (default: a cache under /tmp)")
    parser.add_argument("--rate-limit", type=int, default=1_000_000,
                        help="emulator requests/minute (the real API allows 250; the figures give the time at 250)")
    args = parser.parse_args(argv)

    world = args.world or Path(tempfile.gettempdir()) / f"recon-bench-world-{args.returns}-{args.seed}-{args.end_date}"
    from pipelines.demo.world import generate_world
    if not (world / "manifest.json").exists():
        t = time.monotonic()
        print(f"generating a world of {args.returns:,} returns in {world} ...", flush=True)
        generate_world(world, seed=args.seed, n_returns=args.returns, end_date=args.end_date,
                       progress=lambda m: print(f"  {m}", flush=True))
        print(f"  generated in {time.monotonic() - t:.1f}s", flush=True)
    manifest = json.loads((world / "manifest.json").read_text())

    port = free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "pipelines.demo.emulator", str(world), "--port", str(port),
                                 "--rate-limit-per-minute", str(args.rate_limit)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    home = Path(tempfile.mkdtemp(prefix="recon-bench-"))
    try:
        wait_for(f"http://127.0.0.1:{port}/openapi/v1/Stocks")
        os.environ.update({
            "RECON_HOME": str(home), "OPLOG_BASE_URL": f"http://127.0.0.1:{port}",
            "OPLOG_TENANT_ID": manifest["tenant_id"], "OPLOG_TOKEN": manifest["token"],
            "STOREFRONT_DB_URL": f"sqlite:///{world / 'storefront.sqlite'}",
            "REFUND_LEDGER_PATH": str(world / "ledger"),
        })
        os.environ.pop("DAGSTER_HOME", None)
        from pipelines.runner import run_business_date
        from pipelines.settings import load_settings
        settings = load_settings()
        d = args.end_date
        rows = []
        outcome = None
        for label, day in (("first load", d - timedelta(days=1)), ("quiet next day", d)):
            t = time.monotonic()
            outcome = run_business_date(day, settings=settings, log_level="WARNING")
            wall = time.monotonic() - t
            if not outcome.success:
                print(f"run for {day} failed: {outcome.reason}", file=sys.stderr)
                return 1
            rows.append((label, day, wall, peak_rss_mb(), _api_requests(outcome)))
        counts = manifest["counts"]
        print()
        print(f"world: {args.returns:,} returns, {counts['wms_returns']:,} WMS returns, "
              f"{counts['stock_adjustments']:,} adjustments, {counts['stocks']:,} SKUs, "
              f"{counts['ledger_messages']:,} ledger messages")
        print(f"{'run':<16} {'date':<11} {'wall s':>8} {'peak RSS MB':>12}  WMS requests (minimum at 100/page)")
        minimum = {"returns": math.ceil(counts["wms_returns"] / 100),
                   "adjustments": math.ceil(counts["stock_adjustments"] / 100),
                   "stocks": math.ceil(counts["stocks"] / 100)}
        for label, day, wall, rss, req in rows:
            detail = ", ".join(f"{k} {v}" + (f" (min {minimum[k]})" if label == "first load" and k in minimum else "")
                               for k, v in req.items())
            print(f"{label:<16} {day.isoformat():<11} {wall:>8.1f} {rss:>12.0f}  {detail}")
            total = sum(req.values())
            print(f"{'':<16} {'':<11} {'':>8} {'':>12}  total {total} requests = {total / 250:.1f} min at 250/min")
        from pipelines.reconcile import summary_text
        print()
        print(summary_text(outcome.summary))
    finally:
        os.killpg(emulator.pid, 15)
        emulator.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _api_requests(outcome) -> dict[str, int]:
    """WMS API requests per asset, from the run's materialisation metadata."""
    keys = {"raw/wms_returns": "returns", "raw/wms_probed_returns": "probes",
            "raw/wms_stock_adjustments": "adjustments", "raw/wms_stocks": "stocks"}
    return {short: int(outcome.metadata.get(key, {}).get("api_requests", 0)) for key, short in keys.items()}


if __name__ == "__main__":
    sys.exit(main())
