"""The Dagster code location (``dagster dev -w workspace.yaml``).

Each layer registers its own definitions (assets/sources/*, assets/canonical.py,
assets/reconciliation.py, assets/exports.py, checks/*); this module merges them and adds the
daily job, its schedule, the alert sensors and the resources built from the environment.
"""
import dagster as dg

from assets import canonical, exports, reconciliation, retention
from assets.sources import payments, refund_ledger, rma_platform, storefront, wms
from pipelines.jobs import daily_reconciliation_job, daily_reconciliation_schedule
from pipelines.resources import build_resources
from pipelines.sensors import alert_sensors


def build_definitions(settings=None) -> dg.Definitions:
    from checks import defs_for

    assets = dg.Definitions.merge(
        wms.defs,
        storefront.defs,
        refund_ledger.defs,
        payments.defs,
        rma_platform.defs,
        canonical.defs,
        reconciliation.defs,
        exports.defs,
        retention.defs,
    )
    return dg.Definitions.merge(
        assets,
        defs_for(assets),
        dg.Definitions(
            jobs=[daily_reconciliation_job],
            schedules=[daily_reconciliation_schedule],
            sensors=alert_sensors,
            resources=build_resources(settings),
        ),
    )


defs = build_definitions()
