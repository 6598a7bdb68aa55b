from __future__ import annotations

import dagster as dg

from pipelines.config import ReconConfig, load_config


class ReconConfigResource(dg.ConfigurableResource):
    """Thresholds, severities and status maps (``RECON_CONFIG`` or the project default)."""

    config_path: str

    def load(self) -> ReconConfig:
        return load_config(self.config_path)
