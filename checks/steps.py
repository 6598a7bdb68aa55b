"""The daily job runs the asset checks a few to a Dagster step, not one step each.

Every check is written once, as an ordinary ``@asset_check`` of its module (below: ``asset_check``,
``dg.asset_check`` for one business date in the warehouse pool), which tests materialise on its
own. ``in_steps`` puts them into shared steps (``dg.multi_asset_check``) for the job: a step
costs about 0.1 s of Dagster bookkeeping whatever it does, and most checks take less than that.

A step holds the checks of the tables at one depth of the asset graph (the longest path from a
source table, to the deepest table the check reads): per source for the raw tables
(``raw_wms_checks``; ``raw_wms_depth_1_checks`` for the tracking probes, which read the RMAs),
per layer for the others (``core_depth_2_checks``). No asset of a step is downstream of another
asset of the same step, so a blocking check still runs before every asset it guards, and a
step's blocking failure (severity ERROR) stops what is downstream, as a step of its own would.
Each check's function runs on its own: one that raises does not keep the others of its step
from reporting; it is reported failed (WARN) when it only warns, and fails the step when it is
blocking. The step holds the warehouse file open while it runs (``WarehouseResource.held``).
"""
import contextlib
import functools
import inspect
import traceback
from typing import Callable, Iterable

import dagster as dg

from pipelines.partitions import WAREHOUSE_POOL, daily_partitions

_FUNCTIONS: dict[dg.AssetCheckKey, Callable[..., dg.AssetCheckResult]] = {}

# Raw tables by source, from their names (the other layers are grouped by depth).
RAW_SOURCES = (("oc_", "storefront"), ("wms_", "wms"), ("refund_", "refund_ledger"),
               ("payment_", "payments"), ("rma_platform_", "rma_platform"))


def asset_check(*, asset: list[str], blocking: bool, description: str, name: str | None = None, **kwargs):
    """``@dg.asset_check`` on a daily-partitioned asset, in the warehouse pool; the function is
    also recorded for ``in_steps``. Its parameters after ``context`` are resource keys."""
    def wrap(fn: Callable[..., dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
        definition = dg.asset_check(asset=asset, name=name or fn.__name__, blocking=blocking,
                                    partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
                                    description=description, **kwargs)(fn)
        [key] = definition.check_keys
        _FUNCTIONS[key] = fn
        return definition
    return wrap


def step_name(spec: dg.AssetCheckSpec, depth: int) -> str:
    layer, table = spec.asset_key.path[0], spec.asset_key.path[-1]
    if layer == "raw":
        source = next((s for prefix, s in RAW_SOURCES if table.startswith(prefix)), "other")
        return f"raw_{source}_checks" if depth == 0 else f"raw_{source}_depth_{depth}_checks"
    return f"{layer}_depth_{depth}_checks"


def in_steps(checks: Iterable[dg.AssetChecksDefinition],
             assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetChecksDefinition]:
    """The checks as shared steps, grouped by ``step_name`` over the graph of ``assets`` (the job's)."""
    parents = {spec.key: [dep.asset_key for dep in spec.deps] for a in assets for spec in a.specs}

    @functools.cache
    def depth(key: dg.AssetKey) -> int:
        return 1 + max(map(depth, parents[key])) if parents.get(key) else 0

    steps: dict[str, list[tuple[dg.AssetCheckSpec, dg.AssetChecksDefinition]]] = {}
    for definition in checks:
        for spec in definition.check_specs:
            reads = [spec.asset_key, *(dep.asset_key for dep in spec.additional_deps)]
            steps.setdefault(step_name(spec, max(map(depth, reads))), []).append((spec, definition))
    return [_step(name, members) for name, members in sorted(steps.items())]


def _step(name: str, members: list[tuple[dg.AssetCheckSpec, dg.AssetChecksDefinition]]) -> dg.AssetChecksDefinition:
    specs = [spec for spec, _ in members]
    resources = set().union(*(definition.required_resource_keys for _, definition in members))

    @dg.multi_asset_check(name=name, specs=specs, can_subset=True, required_resource_keys=resources,
                          pool=WAREHOUSE_POOL,
                          description=f"{len(specs)} checks in one step: " + ", ".join(s.name for s in specs))
    def _run(context: dg.AssetCheckExecutionContext):
        held = context.resources.warehouse.held() if "warehouse" in resources else contextlib.nullcontext()
        with held:
            yield from _each(context, specs)

    return _run


def _each(context: dg.AssetCheckExecutionContext, specs: list[dg.AssetCheckSpec]):
    """Each selected check of the step. A check that raises does not stop the others: a warning
    check is reported failed (WARN, with the error), and a blocking one fails the step once the
    others have reported, naming itself (so what is downstream stops, as it should)."""
    raised = []
    for spec in specs:
        if spec.key not in context.selected_asset_check_keys:
            continue
        fn = _FUNCTIONS[spec.key]
        kwargs = {p: getattr(context.resources, p) for p in list(inspect.signature(fn).parameters)[1:]}
        try:
            result = fn(context, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the others still report
            line = (str(exc).strip().splitlines() or [""])[0]
            context.log.error(f"check {spec.key.to_user_string()} raised {type(exc).__name__}: {line}\n"
                              + traceback.format_exc())
            if spec.blocking:
                raised.append((spec, exc))
                continue
            result = dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                         metadata={"error": f"{type(exc).__name__}: {line}"})
        yield result._replace(asset_key=spec.asset_key, check_name=spec.name)
    if raised:
        spec, exc = raised[0]
        raise CheckRaised(f"check {spec.key.to_user_string()} raised {type(exc).__name__}: "
                          f"{(str(exc).strip().splitlines() or [''])[0]}") from None  # the line names the check


class CheckRaised(Exception):
    """A blocking check could not run (its own error, not the data's)."""
