"""The dependency lock (requirements/lock.txt) and how this environment differs from it.

``make demo``, ``make venv`` and ``make test`` install every package at the exact version
the lock names (``make lock`` regenerates it from pyproject.toml). This module reads the
lock and compares it with the installed distributions, for ``cvpipe doctor``, the Makefile
(which removes packages the lock no longer has) and the test that keeps the lock complete.

Example:
    >>> drift = compare(read_lock(find_lock()), installed())  # doctest: +SKIP
    >>> drift.ok, drift.not_in_lock, drift.other_version  # doctest: +SKIP
    (True, [], [])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from cvpipe.errors import ConfigError

LOCK_NAME = Path("requirements") / "lock.txt"
# the project itself is installed from the working tree, never from the lock
SELF = "cvpipe"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def normalize(name: str) -> str:
    """PEP 503 normalised distribution name: ``Typing_Extensions`` → ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _public(version: str) -> str:
    """Version without its local label (``2.14.1+cpu`` → ``2.14.1``), as ``==`` compares it."""
    return version.split("+", 1)[0]


def find_lock() -> Path | None:
    """The lock of this install: ``$CVPIPE_LOCK``, or requirements/lock.txt of the source
    tree cvpipe runs from (an editable install). ``None`` for an installed wheel."""
    env = os.environ.get("CVPIPE_LOCK")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents[:4]:
        candidate = parent / LOCK_NAME
        if candidate.is_file():
            return candidate
    return None


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line of a lock file.

    Raises:
        ConfigError: the file is missing or pins nothing.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the lock file ({exc.strerror}); run 'make lock'"
        ) from None
    pins: dict[str, str] = {}
    for line in text.splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins[normalize(m.group(1))] = m.group(2)
    if not pins:
        raise ConfigError(f"{path}: no 'name==version' line; regenerate it with 'make lock'")
    return pins


def installed() -> dict[str, str]:
    """``{normalised name: version}`` of the distributions this interpreter can import."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(normalize(name), dist.version)
    return out


@dataclass(frozen=True)
class LockDrift:
    """How an environment differs from the lock.

    Attributes:
        not_in_lock: ``(name, installed version)`` of packages the lock does not name.
        other_version: ``(name, installed version, locked version)``.
    """

    not_in_lock: list[tuple[str, str]] = field(default_factory=list)
    other_version: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.not_in_lock and not self.other_version

    def lines(self) -> list[str]:
        """One human line per difference."""
        return [f"{n} {v} is installed but not in the lock" for n, v in self.not_in_lock] + [
            f"{n} {v} is installed; the lock has {want}" for n, v, want in self.other_version
        ]


def compare(lock: dict[str, str], env: dict[str, str]) -> LockDrift:
    """Every package in ``env`` (but cvpipe itself) must be in ``lock`` at the same version.

    Packages of the lock that are not installed are fine: ``make demo`` installs a subset
    (no test tools).
    """
    extra, other = [], []
    for name, version in sorted(env.items()):
        if name == SELF:
            continue
        want = lock.get(name)
        if want is None:
            extra.append((name, version))
        elif _public(version) != _public(want):
            other.append((name, version, want))
    return LockDrift(extra, other)


def locked_version(name: str, lock: dict[str, str] | None) -> str | None:
    """The lock's version of ``name`` (any spelling), or None."""
    return None if lock is None else lock.get(normalize(name))
