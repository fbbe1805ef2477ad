"""``$CVPIPE_HOME``: where cvpipe keeps what it makes for itself (weights store, feature
cache, converted models, packs). Light on purpose: importing it loads nothing heavy."""

from __future__ import annotations

import os
from pathlib import Path


def cvpipe_home() -> Path:
    """``$CVPIPE_HOME``, default ``~/.cache/cvpipe``."""
    env = os.environ.get("CVPIPE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cvpipe"
