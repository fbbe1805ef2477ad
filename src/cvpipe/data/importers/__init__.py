"""Dataset importers, one format per module, registered by name in :data:`IMPORTERS`.

Importing this package registers every built-in format; each format module imports
only the standard library, NumPy and Pillow.
"""

from __future__ import annotations

from cvpipe.data.importers.base import (
    IMPORTERS,
    Importer,
    ImportOptions,
    ImportSummary,
    RawRecord,
    import_dataset,
    run_import,
)

# Register the built-in formats (one module each).
from cvpipe.data.importers import (  # noqa: E402,F401  isort: skip
    amazon_bin,
    coco,
    imagefolder,
    openimages,
    voc,
    yolo,
)

__all__ = [
    "IMPORTERS",
    "ImportOptions",
    "ImportSummary",
    "Importer",
    "RawRecord",
    "import_dataset",
    "run_import",
]
