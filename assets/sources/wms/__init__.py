"""WMS (OPLOG.ONE-style API) source assets: returns, tracking probes, stock adjustments, stocks.

- ``returns``: ``raw.wms_returns`` / ``raw.wms_return_line_items``, polled incrementally.
- ``probes``: returns found by the tracking number of storefront RMAs nothing else explains.
- ``stock``: stock adjustments (incremental on ``completedAt``) and stock levels.
- ``fetching``: how the API is asked (the poll with its sweep, keyed paging).
- ``frames``: validated records (``pipelines.records.wms``) -> raw frames and rejects.

Nothing from the API is trusted to have the documented shape: every record is validated by its
model; a bad one becomes a row of recon.rejects (the model's reason, the grain columns it names,
a payload of the model's fields only: never ``notes`` or other free text) and the others load.
"""
import dagster as dg

from assets.sources.wms.fetching import RETURNS_WITH_ITEMS, poll_returns
from assets.sources.wms.frames import adjustments_to_frames, collapse_latest, returns_to_frames, stocks_to_frames
from assets.sources.wms.probes import wms_tracking_probes
from assets.sources.wms.returns import wms_returns
from assets.sources.wms.stock import wms_stock_adjustments, wms_stocks

__all__ = ["RETURNS_WITH_ITEMS", "adjustments_to_frames", "collapse_latest", "poll_returns", "returns_to_frames",
           "stocks_to_frames", "wms_returns", "wms_stock_adjustments", "wms_stocks", "wms_tracking_probes", "defs"]

defs = dg.Definitions(assets=[wms_returns, wms_tracking_probes, wms_stock_adjustments, wms_stocks])
