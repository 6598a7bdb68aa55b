"""Benchmark: prints figures, asserts nothing (machines are shared and noisy).

    .venv/bin/python -m pipelines.bench --returns 100000      # or: make bench BENCH_ARGS="--returns 100000"

Generates (or reuses) a world of N returns, serves it with the WMS emulator in a separate
process (so its memory is not counted), then runs through Dagster, in this process:
  1. business date D-1 on an empty warehouse (the full first load),
  2. business date D (a quiet next day: only what changed since),
  3. with ``--activity-days N``: dates D+1 .. D+N, each after a day of shop activity on a copy
     of the world's storefront (``pipelines/demo/activity.py``, scaled to the world),
and prints wall time, peak memory (max RSS of this process), WMS API requests per asset
against the minimum (pages needed at 100 items per page), the warehouse file size after each
run, where the time goes (wall time per step group: ingestion per source, canonical, matching,
rules, lifecycle, checks, export, and the orchestration overhead outside the steps), the floor
(``sql/bench/select_floor.sql``: one bare DuckDB query over the same inputs, and the ratio of
our canonical + matching + rules time to it), the warehouse size per activity day and the
per-rule result of the last date. The emulator answers at full speed and the client is unpaced
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
    parser.add_argument("--activity-days", type=int, default=0,
                        help="after the quiet day, this many more dates, each after a day of shop activity "
                             "(pipelines/demo/activity.py): time and warehouse size per day")
    parser.add_argument("--rate-limit", type=int, default=1_000_000,
                        help="emulator requests/minute (the real API allows 250; the figures give the time at 250)")
    args = parser.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore", message=".*(preview|beta).*", category=Warning)

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
        shop = home / "storefront.sqlite"  # a copy: the activity days change it, the cached world stays
        shutil.copy(world / "storefront.sqlite", shop)
        os.environ.update({
            "RECON_HOME": str(home), "OPLOG_BASE_URL": f"http://127.0.0.1:{port}",
            "OPLOG_TENANT_ID": manifest["tenant_id"], "OPLOG_TOKEN": manifest["token"],
            "PAYMENTS_API_BASE": f"http://127.0.0.1:{port}", "PAYMENTS_API_KEY": manifest["payments_key"],
            "RMA_PLATFORM_URL": "none",  # the bench world has no platform RMAs yet
            "STOREFRONT_DB_URL": f"sqlite:///{shop}",
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
        floor = measure_floor(settings.warehouse, d)
        activity = run_activity_days(args, shop, d, settings, defs, instance)
        if activity is None:
            return 1
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
        print_floor(floor, steps[-1])
        print_activity(activity, rows[-1][-1])
        from pipelines.reconcile import summary_text
        print()
        print(summary_text(outcome.summary))
    finally:
        os.killpg(emulator.pid, 15)
        emulator.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return 0


GROUPS = ("ingestion: WMS", "ingestion: storefront", "ingestion: refund ledger", "ingestion: payments",
          "ingestion: RMA platform", "canonical", "matching", "rules", "lifecycle", "checks", "export")


def measure_floor(warehouse: Path, d: date) -> tuple[float, tuple]:
    """Best of three timings of sql/bench/select_floor.sql on the warehouse after date d's run."""
    import duckdb
    from pipelines.partitions import as_of
    from pipelines.settings import SQL_DIR

    sql = (SQL_DIR / "bench" / "select_floor.sql").read_text()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        best, row = math.inf, ()
        for _ in range(3):
            t = time.perf_counter()
            row = con.execute(sql, {"business_date": d, "as_of": as_of(d)}).fetchone()
            best = min(best, time.perf_counter() - t)
        return best, row
    finally:
        con.close()


def print_floor(floor: tuple[float, tuple], quiet: tuple[str, float, dict[str, tuple[int, float]]]) -> None:
    seconds, row = floor
    ours = sum(quiet[2].get(g, (0, 0.0))[1] for g in ("canonical", "matching", "rules"))
    print()
    print(f"floor: one bare DuckDB query over the same inputs (sql/bench/select_floor.sql: the storefront rows in "
          f"force, the latest WMS versions by T with their units, refund versions by T, adjustments and stock, "
          f"joined at order + SKU): {seconds:.3f} s, {row[0]:,} order lines")
    if seconds > 0:
        print(f"  canonical + matching + rules of the {quiet[0]}: {ours:.2f} s = {ours / seconds:.1f}x the floor")


def run_activity_days(args, shop: Path, d: date, settings, defs, instance) -> list[tuple] | None:
    """Dates d+1 .. d+N, each after a day of shop activity: (date, wall, warehouse MB, activity,
    storefront versions written)."""
    from pipelines.demo.activity import apply_day
    from pipelines.runner import run_business_date

    out = []
    scale = max(1, args.returns // 2000)
    for k in range(1, args.activity_days + 1):
        day = d + timedelta(days=k)
        counts = apply_day(shop, day, seed=args.seed, scale=scale)
        t = time.monotonic()
        outcome = run_business_date(day, settings=settings, defs=defs, instance=instance, log_level="WARNING")
        if not outcome.success:
            print(f"run for {day} failed: {outcome.reason}", file=sys.stderr)
            return None
        written = sum(int(outcome.metadata.get(f"raw/{t}", {}).get("versions_written", 0))
                      for t in ("oc_orders", "oc_order_lines", "oc_products", "oc_returns", "oc_return_history"))
        out.append((day, time.monotonic() - t, settings.warehouse.stat().st_size / 2**20, counts, written))
        print(f"  activity day {k}/{args.activity_days} ({day}) done", flush=True)
    return out


def print_activity(activity: list[tuple], quiet_size_mb: float) -> None:
    if not activity:
        return
    print()
    print("days with shop activity (each: new orders and RMAs, status changes, stock moves, an order edit, "
          "an RMA deleted):")
    print(f"  {'date':<11} {'wall s':>7} {'warehouse MB':>13} {'growth MB':>10} {'versions':>9}  activity")
    previous = quiet_size_mb
    for day, wall, size, counts, written in activity:
        detail = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"  {day.isoformat():<11} {wall:>7.1f} {size:>13.1f} {size - previous:>10.2f} {written:>9}  {detail}")
        previous = size


def _group_of(step_key: str, check_steps: set[str]) -> str:
    if step_key in check_steps:
        return "checks"
    if step_key.startswith(("wms_", "raw__wms_")):
        return "ingestion: WMS"
    if step_key.startswith(("storefront", "raw__oc_")):
        return "ingestion: storefront"
    if step_key.startswith("raw__refund"):
        return "ingestion: refund ledger"
    if step_key.startswith("raw__payment"):
        return "ingestion: payments"
    if step_key.startswith("rma_platform"):
        return "ingestion: RMA platform"
    if step_key.startswith("core__"):
        return "canonical"
    if step_key in ("recon__rma_matches", "recon__payment_matches", "recon__order_line_positions"):
        return "matching"
    if step_key == "recon__discrepancy_detections":
        return "rules"
    if step_key.startswith("recon__"):
        return "lifecycle"
    return "export"


def step_groups(instance, run_id: str, defs) -> dict[str, tuple[int, float]]:
    """Step group -> (steps, seconds) of one run, from the run's step statistics; "overhead" is
    the run's wall time outside any step (process, plan, events, resources)."""
    check_steps = {c.node_def.name for c in defs.asset_checks}  # checks.steps: a few checks per step
    out: dict[str, list] = {}
    stats = instance.get_run_step_stats(run_id)
    for s in stats:
        group = out.setdefault(_group_of(s.step_key, check_steps), [0, 0.0])
        group[0] += 1
        group[1] += (s.end_time or s.start_time) - s.start_time
    slowest = sorted(((s.end_time or s.start_time) - s.start_time, s.step_key) for s in stats)[-8:]
    print(f"  slowest steps of run {run_id[:8]}: " + ", ".join(f"{k} {t:.2f} s" for t, k in reversed(slowest)),
          flush=True)
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
