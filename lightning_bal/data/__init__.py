"""The labelled set D_L and the pool D_U."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lightning_bal.data.box_files import check_boxes, read_boxes, write_boxes

if TYPE_CHECKING:
    from lightning_bal.data.datamodule import ActiveDataModule

__all__ = ["ActiveDataModule", "check_boxes", "read_boxes", "write_boxes"]


def __getattr__(name: str) -> Any:
    # The datamodule loads Lightning; the label ledger and the query files (the command line's) do not need it.
    if name == "ActiveDataModule":
        from lightning_bal.data.datamodule import ActiveDataModule

        return ActiveDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
