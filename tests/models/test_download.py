"""Weights downloads against a real HTTP server on 127.0.0.1: good file, wrong hash,
truncated, slow, 404, redirect, Range resume, mirror, off switch, no network."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from tests.weightserver import WeightServer, closed_port

from cvpipe.errors import DownloadError
from cvpipe.models.download import RemoteFile, fetch, hash_from_name, offline_reason

BODY = bytes(range(256)) * 4096  # 1 MiB, deterministic
SHA = hashlib.sha256(BODY).hexdigest()
NAME = f"tiny-{SHA[:8]}.pth"


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CVPIPE_OFFLINE", "HF_HUB_OFFLINE", "CVPIPE_WEIGHTS_URL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("CVPIPE_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("CVPIPE_READ_TIMEOUT", "2")


def test_hash_from_name() -> None:
    assert hash_from_name("resnet50-11ad3fa6.pth") == "11ad3fa6"
    assert hash_from_name("fasterrcnn_resnet50_fpn_coco-258fb6c6.pth") == "258fb6c6"
    assert hash_from_name("model.safetensors") is None


def test_good_file_is_verified_and_renamed(weight_server: WeightServer, tmp_path: Path) -> None:
    url = weight_server.serve(NAME, BODY)
    dest = tmp_path / "cache" / NAME
    got = fetch(RemoteFile(url, NAME, sha256=hash_from_name(NAME)), dest)
    assert dest.read_bytes() == BODY and got.sha256 == SHA and got.size == len(BODY)
    assert "published sha256" in got.verified
    assert not dest.with_name(NAME + ".part").exists()
    # a second fetch of an existing file does not touch the network
    n = len(weight_server.requests)
    assert fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest).verified == "already downloaded"
    assert len(weight_server.requests) == n


def test_wrong_hash_is_refused_and_deleted(weight_server: WeightServer, tmp_path: Path) -> None:
    url = weight_server.serve(NAME, BODY[:-1] + b"x")
    dest = tmp_path / NAME
    with pytest.raises(DownloadError, match="does not match the published"):
        fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest)
    assert not dest.exists() and not dest.with_name(NAME + ".part").exists()


def test_truncated_transfer_keeps_the_part_and_resumes(
    weight_server: WeightServer, tmp_path: Path
) -> None:
    # the server always cuts the body at 100 kB: every attempt makes progress via Range
    url = weight_server.serve(NAME, BODY, cut_at=100_000)
    dest = tmp_path / NAME
    with pytest.raises(DownloadError, match="kept .*part to resume"):
        fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest)
    part = dest.with_name(NAME + ".part")
    assert part.stat().st_size == 400_000  # 4 attempts x 100 kB
    ranges = [r for p, r in weight_server.requests]
    assert ranges == [None, "bytes=100000-", "bytes=200000-", "bytes=300000-"]
    # the server is fixed: the next fetch resumes from the part and completes
    weight_server.serve(NAME, BODY)
    got = fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest)
    assert got.sha256 == SHA and weight_server.requests[-1][1] == "bytes=400000-"


def test_server_ignoring_range_restarts_from_zero(
    weight_server: WeightServer, tmp_path: Path
) -> None:
    url = weight_server.serve(NAME, BODY, ignore_range=True)
    dest = tmp_path / NAME
    dest.with_name(NAME + ".part").write_bytes(b"garbage" * 1000)
    assert fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest).sha256 == SHA


def test_range_beyond_the_file_starts_over(weight_server: WeightServer, tmp_path: Path) -> None:
    url = weight_server.serve(NAME, BODY)
    dest = tmp_path / NAME
    dest.with_name(NAME + ".part").write_bytes(b"\0" * (len(BODY) + 10))
    assert fetch(RemoteFile(url, NAME, sha256=SHA[:8]), dest).sha256 == SHA


def test_slow_server_hits_the_read_timeout(weight_server: WeightServer, tmp_path: Path) -> None:
    url = weight_server.serve(NAME, BODY, stall_at=0, stall_s=6)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="read timed out"):
        fetch(RemoteFile(url, NAME, sha256=SHA[:8]), tmp_path / NAME)
    assert time.monotonic() - t0 < 5.5  # the 2 s read timeout, not the 6 s stall


def test_404(weight_server: WeightServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(RemoteFile(weight_server.url("nothing.pth"), "nothing.pth"), tmp_path / "n.pth")
    assert not (tmp_path / "n.pth").exists()


def test_redirect_and_hub_etag(weight_server: WeightServer, tmp_path: Path) -> None:
    """A Hugging Face style redirect: the hash comes from X-Linked-Etag."""
    target = weight_server.serve("cdn/blob", BODY)
    url = weight_server.serve(
        "timm/x/resolve/main/model.safetensors",
        b"",
        status=302,
        location=target,
        headers={"X-Linked-Etag": f'"{SHA}"'},
    )
    got = fetch(RemoteFile(url, "model.safetensors"), tmp_path / "m.safetensors")
    assert got.sha256 == SHA and SHA[:12] in got.verified
    bad = weight_server.serve(
        "timm/y/model.safetensors", b"", status=302, location=target,
        headers={"X-Linked-Etag": '"' + "0" * 64 + '"'},
    )  # fmt: skip
    with pytest.raises(DownloadError, match="does not match"):
        fetch(RemoteFile(bad, "model.safetensors"), tmp_path / "y.safetensors")


def test_mirror_and_off_switch(
    weight_server: WeightServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weight_server.serve(f"mirror/{NAME}", BODY)
    remote = RemoteFile("https://download.invalid/models/" + NAME, NAME, sha256=SHA[:8])
    monkeypatch.setenv("CVPIPE_WEIGHTS_URL", weight_server.url("mirror"))
    assert fetch(remote, tmp_path / "a" / NAME).url == weight_server.url(f"mirror/{NAME}")
    for var in ("CVPIPE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, "1")
        assert offline_reason() == f"{var}=1"
        with pytest.raises(DownloadError, match=f"downloads are off \\({var}=1\\)"):
            fetch(remote, tmp_path / "b" / NAME)
        monkeypatch.delenv(var)
    assert offline_reason() is None


def test_no_network_fails_within_seconds(tmp_path: Path) -> None:
    port = closed_port()
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch(RemoteFile(f"http://127.0.0.1:{port}/{NAME}", NAME), tmp_path / NAME)
    assert time.monotonic() - t0 < 5


def test_unroutable_address_hits_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVPIPE_CONNECT_TIMEOUT", "1")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="cannot connect"):  # TEST-NET-1: never answers
        fetch(RemoteFile(f"http://192.0.2.1:9/{NAME}", NAME), tmp_path / NAME)
    assert time.monotonic() - t0 < 5
