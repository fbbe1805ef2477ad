"""Server settings: where to listen, limits, auth, URL fetching, batching.

One typed config (``cvpipe serve`` flags and ``--set`` resolve into it through
:func:`cvpipe.config.load_config`); the serverless handler reads the same fields from
``CVPIPE_*`` environment variables (:meth:`ServeSettings.from_env`).

Example:
    >>> ServeSettings(token="s3cret", max_body_mb=5).max_body_bytes
    5242880
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field

from cvpipe.config import Config
from cvpipe.errors import ConfigError


class ServeSettings(Config):
    """Settings of one server (all workers share them)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    token: str | None = None
    max_body_mb: float = Field(default=10.0, gt=0)
    max_pixels: int = Field(default=40_000_000, ge=1)
    max_batch_items: int = Field(default=32, ge=1)
    allow_urls: bool = False
    url_timeout_s: float = Field(default=5.0, gt=0)
    url_max_mb: float = Field(default=10.0, gt=0)
    url_max_redirects: int = Field(default=3, ge=0, le=10)
    threads: int = Field(default=0, ge=0)
    batch_max: int = Field(default=16, ge=1)
    batch_wait_ms: float = Field(default=2.0, ge=0)
    top_k: int = Field(default=5, ge=1)
    score_threshold: float = Field(default=0.5, ge=0, le=1)
    min_score: float = Field(default=0.05, ge=0, le=1)
    device: str = "cpu"
    # glibc malloc arenas per worker process (0 = glibc's default of 8 per core): the
    # threads of a busy server otherwise fragment one arena each and RSS keeps creeping up
    # (ResNet-18 under 16 clients on 2 cores: +98 MiB over 90 s and still growing with
    # the default; with 2, flat after the first 30 s at 150 MiB less, same throughput)
    malloc_arenas: int = Field(default=2, ge=0)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def url_max_bytes(self) -> int:
        return int(self.url_max_mb * 1024 * 1024)

    def intra_op_threads(self) -> int:
        """Threads per inference session: the CPUs shared between workers (``threads`` wins)."""
        if self.threads:
            return self.threads
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cpus or 1) // self.workers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServeSettings:
        """Settings from ``CVPIPE_<FIELD>`` variables (``CVPIPE_ALLOW_URLS=1``, ...).

        Raises:
            ConfigError: a value of the wrong type, naming the variable.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, info in cls.model_fields.items():
            key = f"CVPIPE_{name.upper()}"
            if key not in env:
                continue
            raw = env[key]
            if info.annotation is bool:
                values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[name] = raw
        try:
            return cls.model_validate(values)
        except Exception as exc:
            raise ConfigError(
                f"serve settings from CVPIPE_* environment variables: {exc}"
            ) from None
