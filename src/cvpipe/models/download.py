"""Download a published weights file, safely: the only network access cvpipe makes.

:func:`fetch` downloads a :class:`RemoteFile` to a destination path:

- **off switch**: nothing is fetched when ``CVPIPE_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``
  (``--offline`` sets the first); :func:`offline_reason` says why;
- **mirror**: with ``CVPIPE_WEIGHTS_URL=https://host/base`` every file is fetched from
  ``base/<mirror path>`` (torchvision files: their file name; Hugging Face files:
  ``<repo id>/<file>``) instead of its published address;
- **timeouts**: a connect timeout (``CVPIPE_CONNECT_TIMEOUT``, default 5 s) and a read
  timeout for every blocking read (``CVPIPE_READ_TIMEOUT``, default 30 s), so a machine
  without network fails within seconds and a stalled server never hangs a run;
- **resume**: bytes go to ``DEST.part``; a later attempt (a retry after a dropped
  connection, or the next run) asks for the rest with an HTTP ``Range`` header;
- **hash check before use**: the sha256 is compared with the published one (the full
  hash, or the prefix torchvision and timm put in file names, or the Hugging Face hub's
  ``X-Linked-Etag``); a mismatch deletes the ``.part`` file;
- **atomic rename**: only a complete, verified file appears under ``DEST``;
- proxies: ``http_proxy`` / ``https_proxy`` / ``no_proxy`` are honoured (urllib);
- progress bar through :mod:`cvpipe.progress`; one process at a time per file (a lock
  file), so parallel tuning trials share one download.

Every failure raises :class:`~cvpipe.errors.DownloadError` with the URL and the reason.

Example:
    >>> remote = RemoteFile("https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ...                     "resnet18-f37072fd.pth", sha256=hash_from_name("resnet18-f37072fd.pth"))
    >>> fetch(remote, Path("~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cvpipe.errors import DownloadError
from cvpipe.progress import Bar

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
ATTEMPTS = 3  # retries only after progress (a dropped connection mid-file)
CHUNK = 1 << 20
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")
_FULL_SHA = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class RemoteFile:
    """A published weights file.

    Attributes:
        url: where its publisher serves it.
        filename: its file name.
        sha256: the published sha256, or a prefix of it (from the file name); None when
            only the server can tell (Hugging Face's ``X-Linked-Etag``).
        mirror_path: its path under a ``CVPIPE_WEIGHTS_URL`` mirror (default: filename).
    """

    url: str
    filename: str
    sha256: str | None = None
    mirror_path: str = ""

    def source_url(self) -> str:
        """The URL actually fetched: the mirror's when ``CVPIPE_WEIGHTS_URL`` is set."""
        base = mirror_base()
        if base:
            return f"{base.rstrip('/')}/{(self.mirror_path or self.filename).lstrip('/')}"
        return self.url


@dataclass(frozen=True)
class Fetched:
    """A downloaded, verified file."""

    path: Path
    sha256: str
    size: int
    url: str
    verified: str  # what the hash was checked against ("published prefix 11ad3fa6", ...)


def hash_from_name(filename: str) -> str | None:
    """The sha256 prefix torchvision / timm file names carry (``resnet50-11ad3fa6.pth``)."""
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def offline_reason() -> str | None:
    """Why downloads are off (``"CVPIPE_OFFLINE=1"``...), or None when they are allowed."""
    for var in ("CVPIPE_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]}"
    return None


def set_offline() -> None:
    """Turn downloads off for this process and its children (``--offline``)."""
    os.environ["CVPIPE_OFFLINE"] = "1"


def mirror_base() -> str | None:
    """``CVPIPE_WEIGHTS_URL``: the base URL of a weights mirror, or None."""
    return os.environ.get("CVPIPE_WEIGHTS_URL", "").strip() or None


def timeouts() -> tuple[float, float]:
    """(connect, read) timeouts in seconds (``CVPIPE_CONNECT_TIMEOUT``, ``CVPIPE_READ_TIMEOUT``)."""
    out = []
    for var, default in (("CVPIPE_CONNECT_TIMEOUT", CONNECT_TIMEOUT), ("CVPIPE_READ_TIMEOUT", READ_TIMEOUT)):  # fmt: skip
        raw = os.environ.get(var, "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise DownloadError(f"{var}={raw!r} is not a number of seconds") from None
        out.append(value if value > 0 else default)
    return out[0], out[1]


class _Retry(Exception):
    """The transfer stopped mid-file; ``.part`` holds what arrived."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, remembering the Hugging Face hub's ``X-Linked-Etag`` (the sha256)."""

    def __init__(self) -> None:
        self.linked_etag: str | None = None

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:  # fmt: skip
        tag = (headers.get("X-Linked-Etag") or "").strip('"W/ ')
        if _FULL_SHA.match(tag):
            self.linked_etag = tag
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One downloader per file across processes (POSIX ``flock``; no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = dest.with_name(f".{dest.name}.lock")
    with open(lock, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _set_read_timeout(resp: Any, seconds: float) -> None:
    """urlopen's single timeout covered the connect; reads get their own."""
    with contextlib.suppress(AttributeError, OSError):
        resp.fp.raw._sock.settimeout(seconds)


def _open(url: str, have: int, handler: _Redirects) -> Any:
    connect, read = timeouts()
    headers = {"User-Agent": "cvpipe-weights", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    opener = urllib.request.build_opener(handler)  # includes ProxyHandler (env proxies)
    resp = opener.open(urllib.request.Request(url, headers=headers), timeout=connect)
    _set_read_timeout(resp, read)
    return resp


def _start_offset(resp: Any, have: int) -> int:
    """Where the body starts in the file: ``have`` for a matching 206, else 0."""
    if have and resp.status == 206:
        m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == have:
            return have
    return 0


def _copy(resp: Any, out: IO[bytes], total: int | None, done: int, desc: str) -> int:
    with Bar(total=total, desc=desc, unit="B", unit_scale=True) as bar:
        bar.update(done)
        while True:
            chunk = resp.read(CHUNK)
            if not chunk:
                return done
            out.write(chunk)
            done += len(chunk)
            bar.update(len(chunk))


def _transfer(url: str, part: Path, handler: _Redirects, desc: str) -> None:
    """Download into ``part`` (resuming it); raise _Retry when cut off after progress."""
    have = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, have, handler)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already as long as the file, or longer
            part.unlink()
            raise _Retry("range not satisfiable; starting over") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason})") from None
    with resp:
        start = _start_offset(resp, have)
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        done = start
        try:
            with open(part, "r+b" if start else "wb") as out:
                out.seek(start)
                out.truncate()
                done = _copy(resp, out, total, start, desc)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            what = "read timed out" if isinstance(exc, TimeoutError | socket.timeout) else exc
            if done > have:
                raise _Retry(f"{what} after {done} bytes") from None
            raise DownloadError(
                f"{url}: {what} after {done} bytes (kept {part.name} to resume)"
            ) from None
        if total is not None and done < total:
            if done > have:
                raise _Retry(f"connection closed at {done} of {total} bytes")
            raise DownloadError(
                f"{url}: connection closed at {done} of {total} bytes (kept {part.name} to resume)"
            )


def fetch(remote: RemoteFile, dest: str | Path, *, desc: str = "") -> Fetched:
    """Download ``remote`` to ``dest``, verified and atomically renamed (module docstring).

    Args:
        remote: what to fetch.
        dest: the final path; ``dest.part`` holds a partial download meanwhile.
        desc: progress bar label (default: the file name).

    Returns:
        The :class:`Fetched` file (path, sha256, size, URL, what verified it).

    Raises:
        DownloadError: downloads are off, the server cannot be reached or answers an
            error, the transfer keeps failing, or the sha256 differs from the published one.
    """
    dest = Path(dest).expanduser()
    url = remote.source_url()
    reason = offline_reason()
    if reason:
        raise DownloadError(f"downloads are off ({reason}); not fetching {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    handler = _Redirects()
    with _locked(dest):
        if dest.is_file():  # another process finished it meanwhile
            digest = _sha256(dest)
            return Fetched(dest, digest, dest.stat().st_size, url, "already downloaded")
        log.info("downloading %s to %s", url, dest)
        for attempt in range(ATTEMPTS + 1):
            try:
                _transfer(url, part, handler, desc or remote.filename)
                break
            except _Retry as exc:
                if attempt == ATTEMPTS:
                    raise DownloadError(
                        f"{url}: transfer kept failing ({exc}); kept {part.name} to resume"
                    ) from None
                log.warning("%s: %s; resuming", url, exc)
        digest = _sha256(part)
        expected = remote.sha256 or handler.linked_etag
        if expected and not digest.startswith(expected.lower()):
            part.unlink()
            raise DownloadError(
                f"{url}: sha256 {digest[:12]}... does not match the published {expected[:12]}...; "
                "deleted the download (a corrupt transfer or a mirror serving another file)"
            )
        verified = f"published sha256 {expected[:12]}" if expected else "no published hash"
        if not expected:
            log.warning("%s: no published sha256 to check against; recorded %s", url, digest[:12])
        os.replace(part, dest)
    size = dest.stat().st_size
    log.info("downloaded %s (%d bytes, sha256 %s, %s)", dest.name, size, digest[:12], verified)
    return Fetched(dest, digest, size, url, verified)
