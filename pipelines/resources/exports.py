from pathlib import Path

import dagster as dg


class ExportDirResource(dg.ConfigurableResource):
    """Where finance exports are written (``RECON_EXPORT_DIR``)."""

    path: str

    def root(self) -> Path:
        root = Path(self.path)
        root.mkdir(parents=True, exist_ok=True)
        return root
