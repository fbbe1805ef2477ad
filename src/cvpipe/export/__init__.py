"""Export trained runs to portable formats (ONNX) for fast, torch-free inference."""

from __future__ import annotations

from cvpipe.export.onnx import ExportResult, export_onnx, read_onnx_card

__all__ = ["ExportResult", "export_onnx", "read_onnx_card"]
