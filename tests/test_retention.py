"""Retention (retention.days): a run removes what dates before the cutoff alone needed, the dates
on and after it give exactly the tables they gave without retention, and a date before the
cutoff is refused with a one-line reason."""
from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from conftest import WORLD_END, query, run_date

DATES = [WORLD_END - timedelta(days=n) for n in (3, 2, 1, 0)]
DAYS = 1  # cutoff = WORLD_END - 1 day
PER_DATE_TABLES = ["state.storefront_fetches", "raw.wms_stocks", "core.rma_lines", "core.wms_returns",
                   "recon.order_line_positions"]


def _settings(tmp_path, recon_env, monkeypatch, name: str, days):
    from pipelines.settings import load_settings

    config = tmp_path / f"{name}.yaml"
    # every date's working tables kept (the default keeps the newest date's: tested apart)
    config.write_text(yaml.safe_dump({"retention": {"days": days, "working_dates": None}}))
    monkeypatch.setenv("RECON_CONFIG", str(config))
    monkeypatch.setenv("RECON_HOME", str(tmp_path / name))
    return load_settings()


def _tables(settings, d) -> dict[str, list]:
    out = {t: query(settings, f"SELECT * FROM {t} WHERE business_date = $d ORDER BY ALL", {"d": d})
           for t in ("core.order_lines", "core.rma_lines", "core.wms_returns", "core.wms_return_units",
                     "core.refund_lines", "core.stock_adjustment_lines", "recon.order_line_positions")}
    out["detections"] = query(settings, "SELECT * FROM recon.discrepancy_detections "
                                        "WHERE business_date = $d ORDER BY ALL", {"d": d})
    return out


def test_retention_keeps_what_later_dates_read_and_refuses_retired_dates(tmp_path, recon_env, monkeypatch):
    kept = _settings(tmp_path, recon_env, monkeypatch, "keep_all", None)
    for d in DATES:
        assert run_date(kept, d).success
    thin = _settings(tmp_path, recon_env, monkeypatch, "retained", DAYS)
    for d in DATES:
        outcome = run_date(thin, d)
        assert outcome.success, outcome.reason
    cutoff = WORLD_END - timedelta(days=DAYS)
    assert query(thin, "SELECT max(cutoff) FROM recon.retention_log")[0][0] == cutoff
    removed = dict(query(thin, "SELECT table_name, sum(rows_deleted) FROM recon.retention_log GROUP BY ALL"))
    for table in PER_DATE_TABLES:  # copies per date: nothing before the cutoff is left
        assert removed[table] > 0, table
        assert query(thin, f"SELECT count(*) FROM {table} WHERE business_date < $c", {"c": cutoff})[0][0] == 0
    # the register is the same as without retention: every discrepancy, its dates and status
    register = "SELECT * FROM recon.discrepancies ORDER BY discrepancy_id"
    assert query(thin, register) == query(kept, register)
    # the dates on and after the cutoff give the same tables, also when run again
    for d in (cutoff, WORLD_END):
        assert _tables(thin, d) == _tables(kept, d), d
    assert run_date(thin, WORLD_END).success
    assert _tables(thin, WORLD_END) == _tables(kept, WORLD_END)
    # superseded WMS versions went, current ones stayed: the next poll's watermark is unchanged
    watermark = "SELECT max(least(updated_at, fetched_at)) FROM raw.wms_returns"
    assert query(thin, watermark) == query(kept, watermark)
    # a date before the cutoff is refused, in one line, and writes nothing
    before = query(thin, "SELECT count(*) FROM raw.oc_returns")
    refused = run_date(thin, DATES[0])
    assert not refused.success
    assert "before the retention cutoff" in refused.reason and "\n" not in refused.reason
    assert query(thin, "SELECT count(*) FROM raw.oc_returns") == before


def test_retention_days_must_be_a_whole_number(tmp_path):
    from pipelines.config import ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    for value in (0, -3, 1.5, "30", True):
        bad.write_text(yaml.safe_dump({"retention": {"days": value}}))
        with pytest.raises(ConfigError, match="retention.days"):
            load_config(bad)


WORKING_TABLES_SQL = "SELECT DISTINCT business_date FROM {} ORDER BY 1"


def test_working_tables_keep_the_newest_date_whatever_order_dates_run_in(tmp_path, recon_env, monkeypatch):
    """retention.working_dates = 1 (the default): after dates run in order, or out of order with
    backfills, the canonical and matching tables hold the newest evaluated date only, exactly the
    rows every date's own copy held; the register, every date's detections and the summary of a
    backfilled date (its amounts converted at that date's rates) are those of a run keeping every
    date."""
    from pipelines.retention import WORKING_TABLES

    kept = _settings(tmp_path, recon_env, monkeypatch, "keep_all", None)
    kept_summaries = {d: run_date(kept, d).summary for d in DATES}
    config = tmp_path / "newest.yaml"
    config.write_text("retention:\n  days: null\n")  # working_dates left to its default
    monkeypatch.setenv("RECON_CONFIG", str(config))
    monkeypatch.setenv("RECON_HOME", str(tmp_path / "newest"))
    from pipelines.settings import load_settings
    newest = load_settings()
    outcomes = {}
    for d in (WORLD_END, DATES[0], DATES[2], DATES[1]):  # the newest first, then backfills
        outcomes[d] = run_date(newest, d)
        assert outcomes[d].success, outcomes[d].reason
        for table in WORKING_TABLES:
            dates = [r[0] for r in query(newest, WORKING_TABLES_SQL.format(table))]
            assert dates in ([], [WORLD_END]), (table, d, dates)
    assert query(newest, "SELECT count(*) FROM core.order_lines")[0][0] > 0
    assert _tables(newest, WORLD_END) == _tables(kept, WORLD_END)
    register = "SELECT * FROM recon.discrepancies ORDER BY discrepancy_id"
    assert query(newest, register) == query(kept, register)
    for d in DATES:
        detections = "SELECT * FROM recon.discrepancy_detections WHERE business_date = $d ORDER BY ALL"
        assert query(newest, detections, {"d": d}) == query(kept, detections, {"d": d}), d
    backfilled = DATES[1]
    assert outcomes[backfilled].summary.equals(kept_summaries[backfilled])
    rates = "SELECT * FROM recon.currency_rates WHERE business_date = $d ORDER BY ALL"
    assert query(newest, rates, {"d": backfilled}) == query(kept, rates, {"d": backfilled}) != []
    # what the last run trimmed is on record
    trimmed = query(newest, "SELECT count(*) FROM core.order_lines WHERE business_date = $d", {"d": backfilled})
    assert trimmed == [(0,)]


def test_working_dates_must_be_a_whole_number_or_null(tmp_path):
    from pipelines.config import ConfigError, load_config

    bad = tmp_path / "bad.yaml"
    for value in (0, -1, 2.5, "1", False):
        bad.write_text(yaml.safe_dump({"retention": {"working_dates": value}}))
        with pytest.raises(ConfigError, match="retention.working_dates"):
            load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"retention": {"working_dates": None}}))
    assert load_config(good).working_dates is None
    good.write_text(yaml.safe_dump({"retention": {"working_dates": 3}}))
    assert load_config(good).working_dates == 3


def test_a_date_another_run_is_building_is_not_trimmed_until_that_run_ends(tmp_path):
    """Runs interleave step by step through the warehouse pool (a UI backfill): the newest date's
    run must not remove the rows another run is building for an older date; a marker of a run
    killed more than a day ago protects nothing."""
    from datetime import date, datetime

    from pipelines.resources.warehouse import WarehouseResource, connect
    from pipelines.retention import make_room, trim_working_tables

    d1, d2, d3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
    path = tmp_path / "w.duckdb"
    con = connect(path)
    for d in (d1, d2):
        con.execute("INSERT INTO core.order_lines (business_date, order_reference, order_line_reference) "
                    "VALUES ($d, '1', '1')", {"d": d})
    con.execute("INSERT INTO recon.evaluated_dates VALUES ($d, now())", {"d": d2})
    con.execute("INSERT INTO state.working_runs VALUES ('other', $d, $t)", {"d": d1, "t": datetime.utcnow()})
    con.close()
    warehouse = WarehouseResource(path=str(path))

    def dates():
        return [r[0] for r in warehouse.query("SELECT DISTINCT business_date FROM core.order_lines ORDER BY 1")
                .iter_rows()]

    assert make_room(warehouse, "core.order_lines", d3, 1, "mine") == 1  # d2 went, d1 is being built
    assert dates() == [d1]
    with warehouse.connection() as con:
        con.execute("INSERT INTO core.order_lines (business_date, order_reference, order_line_reference) "
                    "VALUES ($d, '1', '1')", {"d": d3})
        con.execute("INSERT INTO recon.evaluated_dates VALUES ($d, now())", {"d": d3})
        trim_working_tables(con, 1, "mine")
    assert dates() == [d1, d3]
    with warehouse.connection() as con:
        trim_working_tables(con, 1, "other")  # the other run ends: its older date goes
    assert dates() == [d3]
    with warehouse.connection() as con:  # a marker from a run killed two days ago protects nothing
        con.execute("INSERT INTO core.order_lines (business_date, order_reference, order_line_reference) "
                    "VALUES ($d, '1', '1')", {"d": d1})
        con.execute("INSERT INTO state.working_runs VALUES ('killed', $d, now()::TIMESTAMP - INTERVAL 2 DAY)",
                    {"d": d1})
        trim_working_tables(con, 1, "mine")
    assert dates() == [d3]


def test_a_step_run_alone_for_a_trimmed_date_is_refused_in_one_line(tmp_path, recon_env, monkeypatch):
    """After a later date trimmed it, the rules of an older date run alone (a re-execution, or one
    asset materialised from the UI) would read empty working tables and find nothing: refused."""
    import dagster as dg

    from pipelines.definitions import build_definitions
    from pipelines.runner import first_failure_reason

    older, newer = DATES[2], DATES[3]
    for d in (older, newer):
        assert run_date(recon_env, d).success
    assert query(recon_env, "SELECT count(*) FROM core.order_lines WHERE business_date = $d", {"d": older}) == [(0,)]
    before = query(recon_env, "SELECT * FROM recon.discrepancy_detections WHERE business_date = $d ORDER BY ALL",
                   {"d": older})
    job = build_definitions(recon_env).resolve_job_def("daily_reconciliation_job")
    result = job.execute_in_process(partition_key=older.isoformat(), instance=dg.DagsterInstance.ephemeral(),
                                    asset_selection=[dg.AssetKey(["recon", "discrepancy_detections"])],
                                    raise_on_error=False)
    assert not result.success
    reason, _ = first_failure_reason(result)
    assert f"no rows of {older}" in reason and f"recon run --date {older}" in reason and "\n" not in reason, reason
    after = query(recon_env, "SELECT * FROM recon.discrepancy_detections WHERE business_date = $d ORDER BY ALL",
                  {"d": older})
    assert after == before != []  # nothing was rewritten
