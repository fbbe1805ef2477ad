"""Dataset exporters, one format per module, registered by name in :data:`EXPORTERS`.

``export_dataset(dataset, format, out, copy_images=None)`` writes a cvpipe dataset as
COCO JSON, Pascal VOC XML, YOLO text labels or an ImageFolder tree; the matching
importers read every one of them back to the same manifest (round trips are tested).
"""

from __future__ import annotations

from cvpipe.data.exporters.base import EXPORTERS, Exporter, ExportOptions, export_dataset

# Register the built-in formats (one module each).
from cvpipe.data.exporters import (  # noqa: E402,F401  isort: skip
    coco,
    imagefolder,
    voc,
    yolo,
)

__all__ = ["EXPORTERS", "ExportOptions", "Exporter", "export_dataset"]
