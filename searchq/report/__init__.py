"""Reporting: per-layer tables, the `searchq show` view, and matplotlib figures."""

from __future__ import annotations

from searchq.report.show import format_result, layer_rows

__all__ = ["format_result", "layer_rows"]
