"""The ``recon`` command: ``recon run``, ``recon demo``, ``recon emulator``, ``recon review`` (interface.md)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

DEMO_DAYS = 7
DEMO_RETURNS = 400
DEMO_SEED = 7

DAGSTER_YAML = """\
# Written by `recon demo`: a local Dagster instance for the demo's runs.
telemetry:
  enabled: false
concurrency:
  pools:
    # Every asset that writes the DuckDB warehouse is in the pool "duckdb_warehouse":
    # one at a time, so two runs never write the file at once (a queued step waits).
    default_limit: 1
"""


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def fail(message: str, code: int = 1) -> int:
    print(f"recon: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return code


def ensure_dagster_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.config import ConfigError, load_config
    from pipelines.settings import load_settings

    settings = load_settings()
    try:
        load_config(settings.config_path)
    except ConfigError as exc:
        from pipelines import alerts
        alerts.send(settings.alert_webhook, alerts.failure_text(args.date, f"configuration: {exc}"))
        return fail(f"configuration: {exc}", 2)
    try:
        from pipelines.runner import date_range, run_dates
        dates = date_range(args.date, args.to or args.date)
    except (ValueError, ConfigError) as exc:
        return fail(str(exc), 2)
    outcomes = run_dates(dates, settings=settings, progress=lambda m: print(m, file=sys.stderr))
    last = outcomes[-1]
    if not last.success:
        return fail(f"run for {last.business_date} failed: {last.reason}")
    _print_summary(last)
    return 0


def _print_summary(outcome) -> None:
    from pipelines.reconcile import summary_text

    print(f"Discrepancies open on {outcome.business_date}:")
    print(summary_text(outcome.summary))
    export = outcome.metadata.get("exports/finance_export", {})
    if export.get("movement_text"):
        print(export["movement_text"])
    print(f"Finance export: {outcome.export_csv}")
    if export.get("workbook"):
        print(f"Workbook:       {export['workbook']}  (fill the review columns, then: recon review import FILE)")


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from pipelines.settings import load_settings

    settings = load_settings()
    end = args.end_date or (datetime.now(timezone.utc).date() - timedelta(days=1))
    world_dir = settings.demo_dir
    step = _stepper()

    manifest = _load_manifest(world_dir)
    wanted = {"seed": args.seed, "n_returns": args.returns, "end_date": end.isoformat()}
    if manifest is None or any(str(manifest.get(k)) != str(v) for k, v in wanted.items()):
        step(f"building the demo world ({args.returns} returns, business dates up to {end}) in {world_dir}")
        from pipelines.demo.world import generate_world
        shutil.rmtree(world_dir, ignore_errors=True)
        # A new world invalidates what was reconciled from the old one; only what lives under
        # RECON_HOME is removed (a RECON_WAREHOUSE / RECON_EXPORT_DIR elsewhere is never touched).
        if settings.warehouse.resolve().is_relative_to(settings.home):
            for stale in (settings.warehouse, Path(str(settings.warehouse) + ".wal")):
                stale.unlink(missing_ok=True)
        if settings.export_dir.resolve().is_relative_to(settings.home):
            shutil.rmtree(settings.export_dir, ignore_errors=True)
        manifest = generate_world(world_dir, seed=args.seed, n_returns=args.returns, end_date=end,
                                  progress=lambda m: print(f"    {m}", flush=True))
    else:
        step(f"reusing the demo world in {world_dir}")

    from pipelines.demo.emulator import WmsEmulator, WmsWorld
    from pipelines.settings import DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN
    emulator = WmsEmulator(WmsWorld.load(world_dir), tenant_id=manifest["tenant_id"], token=manifest["token"])
    base_url = emulator.start()
    step(f"emulator listening on {base_url} (WMS API /openapi/v1/, payment provider /v1/, RMA platform /graphql)")
    os.environ.update({
        "OPLOG_BASE_URL": base_url,
        "PAYMENTS_API_BASE": base_url,
        "PAYMENTS_API_KEY": str(manifest.get("payments_key") or DEMO_PAYMENTS_KEY),
        "RMA_PLATFORM_URL": base_url,
        "RMA_PLATFORM_TOKEN": str(manifest.get("rma_platform_token") or DEMO_PLATFORM_TOKEN),
        "OPLOG_TENANT_ID": manifest["tenant_id"],
        "OPLOG_TOKEN": manifest["token"],
        "STOREFRONT_DB_URL": f"sqlite:///{world_dir / 'storefront.sqlite'}",
        "REFUND_LEDGER_PATH": str(world_dir / "ledger"),
    })
    os.environ.setdefault("DAGSTER_HOME", str(ensure_dagster_home(settings.dagster_home)))
    ensure_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    try:
        from pipelines.runner import run_dates
        dates = [end - timedelta(days=i) for i in range(args.days - 1, -1, -1)]
        step(f"reconciling {len(dates)} business dates {dates[0]} .. {dates[-1]} through Dagster")
        outcomes = run_dates(dates, settings=load_settings(), progress=lambda m: print(f"    {m}", flush=True),
                             log_level="ERROR")
    finally:
        emulator.stop()
    last = outcomes[-1]
    if not last.success:
        return fail(f"demo run for {last.business_date} failed: {last.reason}")
    print()
    _print_summary(last)
    from pipelines.demo.scoring import score
    from pipelines.resources.warehouse import connect
    con = connect(settings.warehouse, read_only=True)
    try:
        result = score(con, end, world_dir / "ground_truth.json")
    finally:
        con.close()
    print(f"Checked against the demo world's ground truth: {result.report().splitlines()[0]}")
    con = connect(settings.warehouse, read_only=True)
    try:
        rejects = con.execute("SELECT source, count(*), any_value(reason) FROM recon.rejects "
                              "WHERE business_date = $d GROUP BY source ORDER BY source", {"d": end}).fetchall()
    finally:
        con.close()
    for source, count, reason in rejects:
        print(f"Rejected records kept in recon.rejects: {count} from {source} (e.g. {reason})")
    export = Path(last.export_csv).parent
    print(f"Trend chart:    {export / 'trend.png'}")
    print(f"Parquet copy:   {export / 'discrepancies.parquet'}")
    print(f"Warehouse:      {settings.warehouse}")
    print()
    print("See the same runs, the assets and their lineage in the Dagster UI:")
    print(f"    DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml")
    print(f"Demo finished in {time.monotonic() - started:.1f}s.")
    return 0


def _stepper():
    counter = {"n": 0}

    def step(message: str) -> None:
        counter["n"] += 1
        print(f"[demo {counter['n']}] {message}", flush=True)
    return step


def _load_manifest(world_dir: Path) -> dict | None:
    import json
    try:
        return json.loads((world_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def cmd_emulator(args: argparse.Namespace) -> int:
    from pipelines.settings import load_settings

    settings = load_settings()
    world_dir = Path(args.world) if args.world else settings.demo_dir
    if _load_manifest(world_dir) is None:
        if args.world:
            return fail(f"no world in {world_dir} (manifest.json missing)", 2)
        from pipelines.demo.world import generate_world
        end = datetime.now(timezone.utc).date() - timedelta(days=1)
        print(f"building the demo world in {world_dir} ...", flush=True)
        generate_world(world_dir, seed=DEMO_SEED, n_returns=DEMO_RETURNS, end_date=end)
    from pipelines.demo.emulator import serve_forever
    manifest = _load_manifest(world_dir)
    # The credentials the user configured (OPLOG_TENANT_ID / OPLOG_TOKEN) are the ones served, so
    # `recon run` with the same environment is let in; unset, the world's own.
    serve_forever(world_dir, args.host, args.port,
                  tenant_id=os.environ.get("OPLOG_TENANT_ID") or manifest["tenant_id"],
                  token=os.environ.get("OPLOG_TOKEN") or manifest["token"],
                  payments_key=os.environ.get("PAYMENTS_API_KEY") or manifest.get("payments_key"),
                  rma_platform_token=os.environ.get("RMA_PLATFORM_TOKEN") or manifest.get("rma_platform_token"),
                  rate_limit_per_minute=args.rate_limit)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recon", description="Reconcile e-commerce returns across storefront, "
                                                               "warehouse and refund ledger.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="ingest, reconcile and export business date D (or a range)")
    run.add_argument("--date", type=_parse_date, required=True, help="business date YYYY-MM-DD")
    run.add_argument("--to", type=_parse_date, help="last business date of a range (inclusive)")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="build the demo world, start the WMS emulator, reconcile the last 7 days")
    demo.add_argument("--returns", type=int, default=DEMO_RETURNS, help="size of the demo world")
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.add_argument("--days", type=int, default=DEMO_DAYS)
    demo.add_argument("--end-date", type=_parse_date, help="last business date (default: yesterday)")
    demo.set_defaults(func=cmd_demo)
    emu = sub.add_parser("emulator", help="serve the WMS API emulator over the demo world")
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--world", help="world directory (default: $RECON_HOME/demo, built if missing)")
    emu.add_argument("--rate-limit", type=int, default=250, help="requests per minute")
    emu.set_defaults(func=cmd_emulator)
    from pipelines.review_cli import add_parser as add_review_parser
    add_review_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings
    warnings.filterwarnings("ignore", message=".*(preview|beta).*", category=Warning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:  # a last resort: one line, no traceback, no secrets in our own messages
        from pipelines.config import ConfigError
        code = 2 if isinstance(exc, ConfigError) else 1
        return fail(f"{type(exc).__name__}: {exc}", code)


if __name__ == "__main__":
    sys.exit(main())
