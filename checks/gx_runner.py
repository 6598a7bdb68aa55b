"""Runs Great Expectations 1.x expectations on one in-memory frame, and turns the outcome into
a Dagster ``AssetCheckResult``.

Every check module (``checks/<source>_checks.py``) describes its expectations with ``expect()``
(a GX class name and its arguments), optionally adds computed helper columns to the frame (named
``_something``; they are validated but never shown in the failing rows) and calls
``run_expectations``. The result, ``CheckOutcome``, says whether every expectation held, how
each one did, and holds a sample of the failing rows (at most ``SAMPLE_SIZE``, as records).

Only the columns the expectations name are converted to pandas (a check of one key column on a
million rows converts one column, not the table). Great Expectations is imported lazily, on the first validation, because importing it takes
seconds; one ephemeral context (pandas datasource, dataframe asset, whole-dataframe batch
definition) is created per process and shared by every check. Its progress bars are off.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

import polars as pl

SAMPLE_SIZE = 10
RESULT_FORMAT = {"result_format": "COMPLETE"}

_lock = threading.Lock()
_batch_definition: Any = None


@dataclass(frozen=True)
class Expect:
    """One GX expectation, by class name (``great_expectations.expectations.<kind>``) and kwargs."""

    kind: str
    kwargs: Mapping[str, Any]
    label: str

    def build(self) -> Any:
        import great_expectations.expectations as gxe

        return getattr(gxe, self.kind)(**dict(self.kwargs))


def expect(kind: str, label: str | None = None, **kwargs: Any) -> Expect:
    """``expect("ExpectColumnValuesToBeUnique", column="sku", label="sku is unique")``."""
    return Expect(kind=kind, kwargs=kwargs, label=label or _default_label(kind, kwargs))


@dataclass
class ExpectationOutcome:
    expectation: str                 # GX expectation type, e.g. expect_column_values_to_be_unique
    label: str                       # what it checks, in words
    column: str | None               # column(s) it looks at
    success: bool
    unexpected_count: int
    unexpected_percent: float | None = None
    error: str | None = None         # GX raised (e.g. a missing column): counted as a failure
    row_positions: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = {"expectation": self.expectation, "label": self.label, "column": self.column,
               "success": self.success, "unexpected_count": self.unexpected_count}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class CheckOutcome:
    """What a check function returns: callable and assertable without Dagster."""

    success: bool
    rows_checked: int
    unexpected_count: int                     # distinct rows failing at least one expectation
    failing_rows: list[dict[str, Any]]        # sample, at most SAMPLE_SIZE, JSON-ready
    expectations: list[ExpectationOutcome]
    extra: dict[str, Any] = field(default_factory=dict)   # check-specific numbers (e.g. a share)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    def summary(self) -> str:
        if self.success and not self.unexpected_count:
            return f"all {len(self.expectations)} expectation(s) met on {self.rows_checked} row(s)"
        parts = [f"{e.label}: {e.error or f'{e.unexpected_count} row(s)'}" for e in self.failed]
        if self.success:
            parts = [f"passed, {self.unexpected_count} of {self.rows_checked} row(s) tolerated"]
        return "; ".join(parts)


# --------------------------------------------------------------------------- running GX

def run_expectations(frame: pl.DataFrame | Any, expectations: Sequence[Expect], *,
                     sample_size: int = SAMPLE_SIZE, extra: dict[str, Any] | None = None) -> CheckOutcome:
    """Validate ``frame`` (polars or pandas) against each expectation; collect the failing rows."""
    data = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    results = _validate_all(data, expectations)
    positions = sorted({p for r in results for p in r.row_positions})
    sample = _sample(data, results, sample_size)
    return CheckOutcome(
        success=all(r.success for r in results),
        rows_checked=data.height,
        unexpected_count=len(positions),
        failing_rows=sample,
        expectations=results,
        extra=dict(extra or {}),
    )


def _validate_all(data: pl.DataFrame, specs: Sequence[Expect]) -> list[ExpectationOutcome]:
    if not specs:
        return []
    try:
        batch_definition = _gx_batch_definition()
        with _lock:
            batch = batch_definition.get_batch(batch_parameters={"dataframe": _to_pandas(_checked_columns(data, specs))})
            return [_validate(batch, spec) for spec in specs]
    except Exception as exc:  # GX itself failed: every expectation fails with the reason
        return [ExpectationOutcome(_snake(s.kind), s.label, _columns_of(s.kwargs), False, 0, error=_one_line(exc))
                for s in specs]


def _validate(batch: Any, spec: Expect) -> ExpectationOutcome:
    column = _columns_of(spec.kwargs)
    name = _snake(spec.kind)
    try:
        result = batch.validate(spec.build(), result_format=RESULT_FORMAT)
    except Exception as exc:  # a broken expectation is a failed check, never a crash of the run
        return ExpectationOutcome(name, spec.label, column, False, 0, error=_one_line(exc))
    error = _raised(result.exception_info)
    if error:
        return ExpectationOutcome(name, spec.label, column, False, 0, error=error)
    body = result.result or {}
    positions = [int(p) for p in body.get("unexpected_index_list") or []]
    count = body.get("unexpected_count")
    return ExpectationOutcome(
        expectation=name, label=spec.label, column=column, success=bool(result.success),
        unexpected_count=int(count if count is not None else len(positions)),
        unexpected_percent=body.get("unexpected_percent"), row_positions=positions,
    )


def _raised(info: Any) -> str | None:
    """The message of an exception GX caught (top level, or per metric in a nested dict)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return _one_line(info.get("exception_message") or "expectation raised an exception")
    for value in info.values():
        message = _raised(value)
        if message:
            return message
    return None


def _gx_batch_definition() -> Any:
    """One ephemeral GX context per process: pandas datasource -> dataframe asset -> whole frame."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            asset = context.data_sources.add_pandas("recon_checks").add_dataframe_asset("frame")
            _batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        return _batch_definition


def _checked_columns(data: pl.DataFrame, specs: Sequence[Expect]) -> pl.DataFrame:
    """Only the columns the expectations read go to pandas (same rows, same order: a failing row's
    position still points into ``data``, where the sample is taken with every column)."""
    wanted: list[str] = []
    for spec in specs:
        kwargs = spec.kwargs
        names = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"),
                 *(kwargs.get("column_list") or ()), *(kwargs.get("columns") or ())]
        if any(isinstance(v, (list, tuple)) for v in names) or all(n is None for n in names):
            return data  # nested names, or a table-level expectation: the whole frame
        wanted += [str(n) for n in names if n is not None]
    known = [c for c in dict.fromkeys(wanted) if c in data.columns]
    # a column no expectation names, or one missing from the frame: GX must see the frame as it is
    if not known or len(known) < len(set(wanted)):
        return data
    return data.select(known)


def _to_pandas(data: pl.DataFrame) -> Any:
    """Decimals become floats (GX compares numbers); the index is the row position."""
    casts = [pl.col(n).cast(pl.Float64) for n, t in data.schema.items() if isinstance(t, pl.Decimal)]
    return (data.with_columns(casts) if casts else data).to_pandas()


# --------------------------------------------------------------------------- failing rows

def _sample(data: pl.DataFrame, results: list[ExpectationOutcome], size: int) -> list[dict[str, Any]]:
    """Up to ``size`` failing rows, taking from each failed expectation in turn so that every
    kind of failure shows; each row lists the expectations it fails."""
    failing = [r for r in results if r.row_positions]
    chosen: list[int] = []
    queues = [list(r.row_positions) for r in failing]
    while len(chosen) < size and any(queues):
        for queue in queues:
            while queue and queue[0] in chosen:
                queue.pop(0)
            if queue and len(chosen) < size:
                chosen.append(queue.pop(0))
    chosen.sort()
    visible = [c for c in data.columns if not c.startswith("_")]
    rows = []
    for pos in chosen:
        if pos >= data.height:
            continue
        record = {k: json_value(v) for k, v in data.row(pos, named=True).items() if k in visible}
        record["failed_expectations"] = [r.label for r in failing if pos in r.row_positions]
        rows.append(record)
    return rows


def json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


# --------------------------------------------------------------------------- helpers

def _columns_of(kwargs: Mapping[str, Any]) -> str | None:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    for key in ("column_list", "columns"):
        if key in kwargs:
            return ", ".join(map(str, kwargs[key]))
    return None


def _default_label(kind: str, kwargs: Mapping[str, Any]) -> str:
    column = _columns_of(kwargs)
    return f"{_snake(kind)}({column})" if column else _snake(kind)


def _snake(kind: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")


def _one_line(value: Any) -> str:
    text = str(value).strip().splitlines()
    return (text[0] if text else type(value).__name__)[:300]


# --------------------------------------------------------------------------- Dagster glue

def read_partition(warehouse: Any, table: str, business_date: date,
                   columns: Iterable[str] | None = None) -> pl.DataFrame:
    """The rows of ``table`` for one business date, as polars (a storefront table, kept as
    versions: the rows in force at the date's fetch, ``raw.oc_<table>_at``)."""
    cols = ", ".join(columns) if columns else "*"
    source, where = (f"{table}_at($d)", "") if table.startswith("raw.oc_") else (table, " WHERE business_date = $d")
    with warehouse.connection() as con:
        return con.execute(f"SELECT {cols} FROM {source}{where}", {"d": business_date}).pl()


def to_check_result(outcome: CheckOutcome, *, blocking: bool, **metadata: Any) -> Any:
    """``AssetCheckResult``: severity ERROR for blocking checks, WARN otherwise."""
    import dagster as dg

    meta: dict[str, Any] = {
        "failing_rows": dg.MetadataValue.json(outcome.failing_rows),
        "unexpected_count": dg.MetadataValue.int(outcome.unexpected_count),
        "rows_checked": dg.MetadataValue.int(outcome.rows_checked),
        "expectations": dg.MetadataValue.json([e.as_dict() for e in outcome.expectations]),
        "blocking": dg.MetadataValue.bool(blocking),
    }
    for key, value in {**outcome.extra, **metadata}.items():
        meta[key] = _metadata_value(dg, value)
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.summary(),
        metadata=meta,
    )


def _metadata_value(dg: Any, value: Any) -> Any:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(value)
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float):
        return dg.MetadataValue.float(value)
    if isinstance(value, str):
        return dg.MetadataValue.text(value)
    return dg.MetadataValue.json(json_value(value))
