"""The limits an upload is held to while it is parsed, with the settings that set them."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.errors import LimitExceeded, Loc


@dataclass(frozen=True)
class UploadLimits:
    max_cells: int  # BACKPROP_MAX_DATASET_CELLS: rows x features

    def check_cells(self, rows: int, width: int, loc: Loc) -> None:
        if rows * width > self.max_cells:
            raise LimitExceeded(
                "dataset rows x features",
                rows * width,
                setting="BACKPROP_MAX_DATASET_CELLS",
                limit=self.max_cells,
                loc=loc,
            )
