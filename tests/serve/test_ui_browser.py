"""The web page in a real browser (Playwright driving Debian's chromium), offline.

Uploads an image through the page's file input against a live loopback server, checks the
drawn result (class bars; boxes on the canvas for a detector, through a stubbed predict
route), moves the threshold slider (no new request) and saves screenshots.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.conftest import skip_or_fail
from tests.serve.conftest import image_bytes

from cvpipe.serve.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("python playwright is not installed")
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"{CHROMIUM} not found (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser, url: str, outside: list[str]):
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(("http://127.0.0.1", "blob:", "data:"))
            else outside.append(r.url)
        ),
    )
    page.goto(url)
    return page


@pytest.mark.slow
def test_classify_upload_draws_bars(browser, served_run: Path, live_server, tmp_path: Path) -> None:
    img = tmp_path / "red.jpg"
    img.write_bytes(image_bytes((160, 120)))
    outside: list[str] = []
    with live_server(create_app(served_run)) as srv:
        page = _page(browser, srv.url, outside)
        page.wait_for_selector("#model-name:has-text('base_cnn')")
        page.set_input_files("#file-input", str(img))
        page.wait_for_selector("#status:has-text('Done')")
        bars = page.locator("#bars li.bar")
        assert bars.count() == 3
        labels = [bars.nth(i).get_attribute("data-label") for i in range(3)]
        assert sorted(labels) == ["a", "b", "c"]
        widths = [
            float(bars.nth(i).locator(".fill").evaluate("e => parseFloat(e.style.width)"))
            for i in range(3)
        ]
        assert abs(sum(widths) - 100) < 1 and widths == sorted(widths, reverse=True)
        assert page.locator("#lat-model").inner_text().endswith("ms")
        assert page.locator("#figure").is_visible()
        # keyboard: Tab reaches the drop zone (a button) and Enter opens the file chooser
        page.evaluate("document.activeElement.blur()")
        for _ in range(3):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "drop-zone":
                break
        assert page.evaluate("document.activeElement.id") == "drop-zone"
        page.evaluate(
            "document.getElementById('file-input').addEventListener('click', e => { window.__picked = true; e.preventDefault(); })"
        )
        page.keyboard.press("Enter")
        assert page.evaluate("window.__picked === true")
        page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
    assert outside == []


@pytest.mark.slow
def test_detect_boxes_and_threshold_slider(
    browser, served_run: Path, live_server, tmp_path: Path
) -> None:
    img = tmp_path / "food.png"
    img.write_bytes(image_bytes((200, 100), fmt="PNG", color=(240, 240, 240)))
    detect_card = {
        "task": "detect",
        "classes": ["burger", "fries"],
        "model": "ssdlite_fake",
        "input_size": 320,
        "preprocess": {},
        "metrics": {},
        "backend": "pytorch",
        "export": None,
        "thresholds": {},
        "limits": {"allow_urls": False, "score_threshold": 0.5},
    }
    detect_result = {
        "task": "detect",
        "image": {"width": 200, "height": 100, "format": "PNG"},
        "detections": [
            {
                "box": [20, 20, 120, 90],
                "box_norm": [0.1, 0.2, 0.6, 0.9],
                "label": "burger",
                "score": 0.9,
            },
            {
                "box": [100, 10, 180, 50],
                "box_norm": [0.5, 0.1, 0.9, 0.5],
                "label": "fries",
                "score": 0.3,
            },
        ],
        "counts": {"burger": 1, "fries": 0},
        "score_threshold": 0.5,
        "timing_ms": {"decode": 1.0, "model": 2.0, "total": 4.0},
    }
    calls: list[str] = []
    outside: list[str] = []
    with live_server(create_app(served_run)) as srv:
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith(("http://127.0.0.1", "blob:")) else outside.append(r.url)
            ),
        )
        page.route(
            "**/v1/model",
            lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(detect_card)
            ),
        )

        def predict(route):
            calls.append(route.request.url)
            route.fulfill(
                status=200, content_type="application/json", body=json.dumps(detect_result)
            )

        page.route("**/v1/predict*", predict)
        page.goto(srv.url)
        page.wait_for_selector("#model-name:has-text('detect')")
        page.set_input_files("#file-input", str(img))
        page.wait_for_selector("#status:has-text('Done')")
        assert page.locator("#det-list li").count() == 1
        assert "1 object(s): 1 × burger" in page.locator("#summary").inner_text()
        # the box outline is drawn in the burger colour at its left edge (x = 20 px)
        px = page.evaluate(
            "(() => { const c = document.getElementById('canvas'); return Array.from(c.getContext('2d').getImageData(20, 60, 1, 1).data); })()"
        )
        assert px[0] > 200 and px[1] < 80, px  # #e6194b
        page.fill("#threshold", "0.2")
        page.dispatch_event("#threshold", "input")
        assert page.locator("#det-list li").count() == 2
        assert "2 object(s)" in page.locator("#summary").inner_text()
        assert len(calls) == 1  # redrawn without a new request
        page.screenshot(path=str(tmp_path / "detect.png"), full_page=True)
        shot_dir = os.environ.get("CVPIPE_UI_SHOTS")
        if shot_dir:
            page.screenshot(path=str(Path(shot_dir) / "detect.png"), full_page=True)
    assert outside == []
