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
    config.write_text(yaml.safe_dump({"retention": {"days": days}}))
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
