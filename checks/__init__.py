"""Data-quality checks (Great Expectations 1.x) attached to the assets as Dagster asset checks.

One module per layer / source, named after it: ``wms_checks`` (raw WMS tables),
``storefront_checks`` (raw OpenCart tables), ``refund_ledger_checks`` (raw refund ledger) and
``canonical_checks`` (core tables), ``table_checks`` (key and value checks of the other tables,
declared as data). ``gx_runner`` runs the expectations and builds the results; ``steps`` runs
them a few to a Dagster step in the daily job (``defs_for``).
Each check's description says whether it is BLOCKING (a failure stops the downstream assets) or
only warns.
"""
import dagster as dg

from checks import canonical_checks, refund_ledger_checks, storefront_checks, table_checks, wms_checks
from checks.steps import in_steps

all_checks = [
    *wms_checks.asset_checks,
    *storefront_checks.asset_checks,
    *refund_ledger_checks.asset_checks,
    *canonical_checks.asset_checks,
    *table_checks.asset_checks,
]


def defs_for(assets: dg.Definitions) -> dg.Definitions:
    """Every check, in the shared steps of ``checks.steps`` over the graph of ``assets``."""
    return dg.Definitions(asset_checks=in_steps(all_checks, assets.assets))
