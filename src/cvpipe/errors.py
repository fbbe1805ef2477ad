"""The cvpipe exception hierarchy.

Every error cvpipe raises on purpose derives from :class:`CvpipeError`. The command line
turns these into one-line messages and a non-zero exit code; anything else is a bug and
keeps its traceback.

Messages say what went wrong, where (file, line, field) and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class CvpipeError(Exception):
    """Root of every error cvpipe raises deliberately."""

    exit_code = 2


class ConfigError(CvpipeError):
    """A configuration value or key is invalid."""


class UnknownNameError(CvpipeError, KeyError):
    """A name (model, format, strategy...) is not registered; the message lists close ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetFormatError(CvpipeError):
    """An annotation or image file cannot be read as the declared format.

    Args:
        message: what is wrong and how to fix it.
        path: the offending file, if any.
        line: 1-based line (or record number) in that file, if known.
        field: the field or column, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.message}" if where else self.message


class DatasetError(CvpipeError):
    """A dataset directory is missing, incomplete or inconsistent."""


class ValidationFailed(CvpipeError):
    """``validate --on-error fail`` found problems."""

    exit_code = 1


class MissingDependencyError(CvpipeError):
    """An optional dependency is needed for this feature but not installed."""


class WeightsNotFoundError(CvpipeError):
    """Pretrained weights could not be found on this machine nor downloaded."""


class DownloadError(WeightsNotFoundError):
    """A weights download was off, failed, or gave a file whose hash differs."""


class CheckpointError(CvpipeError):
    """A checkpoint is unreadable or does not match the model / dataset."""


class TrainingDiverged(CvpipeError):
    """The loss became NaN or infinite."""
