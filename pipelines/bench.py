"""Benchmark: prints figures, asserts nothing (machines are shared and noisy).

    .venv/bin/python -m pipelines.bench --returns 100000      # or: make bench BENCH_ARGS="--returns 100000"

Generates (or reuses) a world of N returns, serves it with the WMS emulator in a separate
process (so its memory is not counted), then runs through Dagster, in this process:
  1. business date D-1 on an empty warehouse (the full first load),
  2. business date D (a quiet next day: only what changed since),
and prints wall time, peak memory (max RSS of this process), WMS API requests per asset
against the minimum (pages needed at 100 items per page), the warehouse file size after each
run, where the time goes (wall time per step group: ingestion per source, canonical, matching,
rules, lifecycle, checks, export, and the orchestration overhead outside the steps) and the
per-rule result of D. The emulator answers at full speed and the client is unpaced
(``wms.requests_per_minute: 0``): the time at the real API's 250 requests/minute is printed
separately.
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
        config = home / "bench.yaml"
        config.write_text("wms:\n  requests_per_minute: 0   # the emulator at full speed: measure the pipeline\n")
        os.environ["RECON_CONFIG"] = str(config)
        os.environ.pop("DAGSTER_HOME", None)
        import dagster as dg
        from pipelines.definitions import build_definitions
        from pipelines.runner import run_business_date
        from pipelines.settings import load_settings
        settings = load_settings()
        defs = build_definitions(settings)
        instance = dg.DagsterInstance.ephemeral()
        d = args.end_date
        rows = []
        steps = []
        outcome = None
        for label, day in (("first load", d - timedelta(days=1)), ("quiet next day", d)):
            t = time.monotonic()
            outcome = run_business_date(day, settings=settings, defs=defs, instance=instance, log_level="WARNING")
            wall = time.monotonic() - t
            if not outcome.success:
                print(f"run for {day} failed: {outcome.reason}", file=sys.stderr)
                return 1
            size = settings.warehouse.stat().st_size / 2**20
            rows.append((label, day, wall, peak_rss_mb(), _api_requests(outcome), size))
            steps.append((label, wall, step_groups(instance, outcome.run_id, defs)))
        counts = manifest["counts"]
        print()
        print(f"world: {args.returns:,} returns, {counts['wms_returns']:,} WMS returns, "
              f"{counts['stock_adjustments']:,} adjustments, {counts['stocks']:,} SKUs, "
              f"{counts['ledger_messages']:,} ledger messages")
        print(f"{'run':<16} {'date':<11} {'wall s':>8} {'peak RSS MB':>12} {'warehouse MB':>13}  "
              "WMS requests (minimum at 100/page)")
        minimum = {"returns": math.ceil(counts["wms_returns"] / 100),
                   "adjustments": math.ceil(counts["stock_adjustments"] / 100),
                   "stocks": math.ceil(counts["stocks"] / 100)}
        for label, day, wall, rss, req, size in rows:
            detail = ", ".join(f"{k} {v}" + (f" (min {minimum[k]})" if label == "first load" and k in minimum else "")
                               for k, v in req.items())
            print(f"{label:<16} {day.isoformat():<11} {wall:>8.1f} {rss:>12.0f} {size:>13.1f}  {detail}")
            total = sum(req.values())
            print(f"{'':<16} {'':<11} {'':>8} {'':>12} {'':>13}  total {total} requests = "
                  f"{total / 250:.1f} min at 250/min")
        print()
        print_step_groups(steps)
        from pipelines.reconcile import summary_text
        print()
        print(summary_text(outcome.summary))
    finally:
        os.killpg(emulator.pid, 15)
        emulator.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return 0


GROUPS = ("ingestion: WMS", "ingestion: storefront", "ingestion: refund ledger", "canonical", "matching", "rules",
          "lifecycle", "checks", "export")


def _group_of(step_key: str, check_steps: set[str]) -> str:
    if step_key in check_steps:
        return "checks"
    if step_key.startswith(("wms_", "raw__wms_")):
        return "ingestion: WMS"
    if step_key.startswith(("storefront", "raw__oc_")):
        return "ingestion: storefront"
    if step_key.startswith("raw__refund"):
        return "ingestion: refund ledger"
    if step_key.startswith("core__"):
        return "canonical"
    if step_key in ("recon__rma_matches", "recon__order_line_positions"):
        return "matching"
    if step_key == "recon__discrepancy_detections":
        return "rules"
    if step_key.startswith("recon__"):
        return "lifecycle"
    return "export"


def step_groups(instance, run_id: str, defs) -> dict[str, tuple[int, float]]:
    """Step group -> (steps, seconds) of one run, from the run's step statistics; "overhead" is
    the run's wall time outside any step (process, plan, events, resources)."""
    graph = defs.resolve_asset_graph()
    check_steps = {f"{'__'.join(k.asset_key.path)}_{k.name}" for k in graph.asset_check_keys}
    out: dict[str, list] = {}
    stats = instance.get_run_step_stats(run_id)
    for s in stats:
        group = out.setdefault(_group_of(s.step_key, check_steps), [0, 0.0])
        group[0] += 1
        group[1] += (s.end_time or s.start_time) - s.start_time
    run = instance.get_run_stats(run_id)
    inside = sum(v[1] for v in out.values())
    out["overhead"] = [0, max(0.0, (run.end_time - run.start_time) - inside)]
    return {k: (v[0], v[1]) for k, v in out.items()}


def print_step_groups(steps: list[tuple[str, float, dict[str, tuple[int, float]]]]) -> None:
    print("where the time goes (seconds; steps run one after another):")
    print(f"  {'step group':<26}" + "".join(f" {label:>22}" for label, _, _ in steps))
    for group in (*GROUPS, "overhead"):
        cells = []
        for _, _, groups in steps:
            n, secs = groups.get(group, (0, 0.0))
            cells.append(f"{secs:>9.2f} s ({n:>2} steps)" if group != "overhead" else f"{secs:>9.2f} s          ")
        print(f"  {group:<26}" + "".join(f" {c:>22}" for c in cells))
    print(f"  {'run wall (incl. summary)':<26}" + "".join(f" {wall:>9.2f} s          " for _, wall, _ in steps))


def _api_requests(outcome) -> dict[str, int]:
    """WMS API requests per asset, from the run's materialisation metadata."""
    keys = {"raw/wms_returns": "returns", "raw/wms_probed_returns": "probes",
            "raw/wms_stock_adjustments": "adjustments", "raw/wms_stocks": "stocks"}
    return {short: int(outcome.metadata.get(key, {}).get("api_requests", 0)) for key, short in keys.items()}


if __name__ == "__main__":
    sys.exit(main())
