"""Request guards: auth, image checks before decoding, and safe URL fetching.

Everything a client sends is untrusted:

- **Auth**: ``Authorization: Bearer T`` compared in constant time (:func:`check_token`).
- **Images**: the type comes from the magic bytes (never the Content-Type header or a
  file name); the header is probed for the size before any pixel is decoded, so a small
  PNG declaring 100 000 x 100 000 pixels is refused (``max_pixels``) without allocating
  it; truncated or corrupt data is a 400/422, never a 500 (:func:`decode_image`).
- **URLs** (off unless ``allow_urls``): http(s) only; the host is resolved and every
  address must be public (not private, loopback, link-local, multicast, reserved,
  unspecified, or a cloud metadata address); the connection goes to the checked IP
  itself (no second lookup, so DNS rebinding cannot swap it); redirects are followed by
  hand, each hop checked again, at most ``url_max_redirects``; the download is capped in
  bytes and seconds (:func:`fetch_url`).

Each refusal is an :class:`ApiError` with the HTTP status and a stable ``code``.
"""

from __future__ import annotations

import hmac
import http.client
import io
import ipaddress
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from PIL import Image, UnidentifiedImageError

import cvpipe.orientation as O
from cvpipe.orientation import Orient
from cvpipe.serve.settings import ServeSettings

# (magic prefix, offset, format, mime)
_MAGIC: list[tuple[bytes, int, str, str]] = [
    (b"\xff\xd8\xff", 0, "JPEG", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "image/png"),
    (b"GIF87a", 0, "GIF", "image/gif"),
    (b"GIF89a", 0, "GIF", "image/gif"),
    (b"BM", 0, "BMP", "image/bmp"),
    (b"II*\x00", 0, "TIFF", "image/tiff"),
    (b"MM\x00*", 0, "TIFF", "image/tiff"),
]
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)


class ApiError(Exception):
    """A request refused with an HTTP status, a stable code and a message for the client.

    Example:
        >>> ApiError(415, "unsupported_media_type", "body is not an image").status
        415
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def check_token(authorization: str | None, token: str | None) -> None:
    """Accept ``Bearer <token>`` (constant-time compare); no token configured → open.

    Raises:
        ApiError: 401 when the header is missing, malformed or wrong.
    """
    if not token:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8")
    ):
        raise ApiError(
            401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer TOKEN)"
        )


def sniff_image_type(data: bytes) -> tuple[str, str] | None:
    """``(PIL format, mime)`` from the magic bytes, or None when not a supported image."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    for magic, offset, fmt, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return fmt, mime
    return None


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An RGB image decoded from request bytes, with its original size and format."""

    image: Image.Image
    width: int
    height: int
    format: str


def decode_image(
    data: bytes, max_pixels: int, draft: int | None = None, orientation: Orient = None
) -> DecodedImage:
    """Decode untrusted bytes as an RGB image, checking type and size first.

    Args:
        data: the request body (or an upload / a download).
        max_pixels: largest width x height accepted (decompression-bomb guard).
        draft: JPEG only: decode at a reduced size no smaller than this side.
        orientation: ``"exif"`` turns the image by its own EXIF orientation (models
            trained with ``--exif apply``: the card's ``orientation``); None keeps the
            stored pixels.

    Returns:
        The RGB image; ``width``/``height`` are the sizes declared by the file, swapped
        when the EXIF orientation turned it by 90° (boxes are reported in these pixels).

    Raises:
        ApiError: 400 empty body; 415 not a supported image type; 413 too many pixels;
            422 truncated or corrupt image data.
    """
    if not data:
        raise ApiError(400, "empty_body", "the request holds no image data")
    kind = sniff_image_type(data)
    if kind is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "the data is not a JPEG, PNG, WebP, GIF, BMP or TIFF image (checked from its first bytes)",
        )
    fmt = kind[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ApiError(422, "corrupt_image", f"cannot read the {fmt} header: {exc}") from None
        except Image.DecompressionBombError:
            raise ApiError(413, "too_many_pixels", "image declares too many pixels") from None
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ApiError(422, "corrupt_image", f"image declares the size {width}x{height}")
        if width * height > max_pixels:
            raise ApiError(
                413,
                "too_many_pixels",
                f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            )
        try:
            turn = O.resolve(orientation, im)
            if draft and fmt == "JPEG":
                im.draft("RGB", (draft, draft))
            im.load()
            rgb = _to_rgb(O.apply(im, turn))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            msg = str(exc)
            code = (
                "truncated_image" if "truncated" in msg or "broken data" in msg else "corrupt_image"
            )
            raise ApiError(422, code, f"cannot decode the {fmt} image: {msg}") from None
    width, height = O.oriented_size(width, height, turn)
    return DecodedImage(rgb, int(width), int(height), fmt)


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("P", "PA", "LA", "RGBA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


# -- URL fetching -----------------------------------------------------------------------


def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for public unicast addresses (no private, loopback, link-local, ...)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_allowed(ip.ipv4_mapped)
    return not (
        ip in _METADATA_IPS
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """All addresses of ``host`` (IPv4 and IPv6) as strings."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, resolver: Resolver = resolve_host) -> tuple[str, str, int, str]:
    """Validate one URL and pick the IP to connect to.

    Returns:
        ``(scheme, host, port, ip)``.

    Raises:
        ApiError: 400 for a malformed URL, a non-http(s) scheme, credentials in the URL,
            an unresolvable host, or any non-public address.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ApiError(400, "bad_url", f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ApiError(
            400, "bad_url", f"only http and https URLs are fetched (got {scheme or 'none'!r})"
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ApiError(400, "bad_url", "the URL has no host")
    if parts.username or parts.password:
        raise ApiError(400, "bad_url", "credentials in URLs are not allowed")
    if host in METADATA_HOSTS or host == "localhost" or host.endswith(".localhost"):
        raise ApiError(400, "forbidden_address", f"{host}: fetching from this host is not allowed")
    port = port or (443 if scheme == "https" else 80)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise ApiError(400, "unresolvable_host", f"{host}: cannot resolve: {exc}") from None
    if not addresses:
        raise ApiError(400, "unresolvable_host", f"{host}: no addresses")
    bad = [str(a) for a in addresses if not address_allowed(a)]
    if bad:
        raise ApiError(
            400,
            "forbidden_address",
            f"{host} resolves to a non-public address ({', '.join(bad)}); only public hosts are fetched",
        )
    return scheme, host, port, str(addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP, with SNI and certificate checks for the original host name."""

    def __init__(self, ip: str, host: str, port: int, timeout: float) -> None:
        super().__init__(ip, port, timeout=timeout, context=ssl.create_default_context())
        self._sni_host = host

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._sni_host)  # type: ignore[attr-defined]


def _open(scheme: str, host: str, port: int, ip: str, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return _PinnedHTTPSConnection(ip, host, port, timeout)
    return http.client.HTTPConnection(ip, port, timeout=timeout)


def fetch_url(url: str, settings: ServeSettings, resolver: Resolver = resolve_host) -> bytes:
    """Download an image URL under the safety rules above.

    Args:
        url: http(s) URL given by the client.
        settings: ``allow_urls``, ``url_timeout_s``, ``url_max_mb``, ``url_max_redirects``.
        resolver: host → addresses (tests inject one; default: the system resolver).

    Returns:
        The body bytes (at most ``url_max_bytes``).

    Raises:
        ApiError: 403 when URL fetching is off; 400 for refused URLs or addresses (also
            after a redirect) and too many redirects; 413 for a body over the limit;
            502 when the remote answers with an error; 504 on timeout.
    """
    if not settings.allow_urls:
        raise ApiError(
            403,
            "urls_disabled",
            "image URLs are not fetched by this server (start it with --allow-urls)",
        )
    deadline = time.monotonic() + settings.url_timeout_s
    for _hop in range(settings.url_max_redirects + 1):
        scheme, host, port, ip = check_url(url, resolver)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        remaining = max(0.1, deadline - time.monotonic())
        conn = _open(scheme, host, port, ip, remaining)
        try:
            host_header = host if port in (80, 443) else f"{host}:{port}"
            conn.request(
                "GET",
                target,
                headers={"Host": host_header, "User-Agent": "cvpipe-serve", "Accept": "image/*"},
            )
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise ApiError(502, "bad_upstream", f"{url}: redirect without a Location")
                url = urljoin(url, location)
                continue
            if resp.status != 200:
                raise ApiError(
                    502, "bad_upstream", f"{url}: the server answered HTTP {resp.status}"
                )
            return _read_capped(resp, settings.url_max_bytes, deadline, url)
        except TimeoutError:
            raise ApiError(
                504, "upstream_timeout", f"{url}: no answer within {settings.url_timeout_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(502, "bad_upstream", f"{url}: cannot download: {exc}") from None
        finally:
            conn.close()
    raise ApiError(400, "too_many_redirects", f"more than {settings.url_max_redirects} redirects")


def _read_capped(resp: Any, limit: int, deadline: float, url: str) -> bytes:
    declared = resp.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "download_too_large", f"{url}: {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise ApiError(504, "upstream_timeout", f"{url}: download too slow")
        chunk = resp.read(65536)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "download_too_large", f"{url}: more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
