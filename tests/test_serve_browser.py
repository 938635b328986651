"""The page of ``resnet serve`` in a real browser: headless Chromium (Debian's ``chromium`` package)
driven by Playwright opens it, uploads a real photo (picked, then dropped) and sees the top-5 bars and
the CAM overlay, with no request leaving the server. Skipped, saying why, where Chromium is absent
(``.ci/run`` installs it with apt-get before the tests)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Iterator

import pytest

import resnet
from resnet.models.interop import save_weights
from resnet.serve import BackgroundServer, ServeConfig, create_app, load_member

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
pytestmark = [
    pytest.mark.shared,
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does this)"),
]


def _photo(shared: Path) -> Path:
    for folder in ("imagenet-samples/images", "caltech101-10/val"):
        if (shared / "data" / folder).is_dir():
            found = sorted(p for p in (shared / "data" / folder).rglob("*") if p.suffix.lower() in (".jpeg", ".jpg"))
            if found:
                return found[0]
    pytest.skip("../shared/data (real photos: imagenet-samples or caltech101-10) is not present")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    weights = tmp_path_factory.mktemp("browser") / "tiny.safetensors"
    save_weights(resnet.create_model("resnet8"), weights, {"classes": [f"class {i}" for i in range(10)]})
    with BackgroundServer(create_app(load_member(str(weights), "fp32"), ServeConfig(), mode="fp32")) as url:
        yield url


def test_page_uploads_a_real_photo_and_shows_top5_and_overlay(served: str, shared_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    from playwright.sync_api import sync_playwright

    photo = _photo(shared_dir)
    outside: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1100, "height": 640}
        )
        try:
            page = context.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(served)
                       else (outside.append(route.request.url), route.abort()))
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(served + "/")
            page.wait_for_function("document.getElementById('model').textContent.includes('resnet8')")

            page.set_input_files("#file", str(photo))  # pick
            page.wait_for_selector("#results.shown", timeout=60_000)
            _check_results(page)
            page.screenshot(path=str(tmp_path / "page.png"))

            page.evaluate("document.getElementById('results').className = ''")
            data = base64.b64encode(photo.read_bytes()).decode()
            page.evaluate(  # drop: the same file through a DataTransfer, as a drag from the desktop gives it
                """([data, name]) => {
                    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                    const transfer = new DataTransfer();
                    transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
                    document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
                }""",
                [data, photo.name],
            )
            page.wait_for_selector("#results.shown", timeout=60_000)
            _check_results(page)
            assert not errors, errors
        finally:
            context.close()
    assert not outside, f"the page tried to reach {outside}"
    assert (tmp_path / "page.png").stat().st_size > 10_000


def _check_results(page) -> None:  # noqa: ANN001 - playwright Page
    bars = page.locator("#bars .bar")
    assert bars.count() == 5
    labels = bars.locator(".label span:first-child").all_inner_texts()
    assert all(text.startswith("class ") for text in labels)
    widths = page.eval_on_selector_all("#bars .fill", "els => els.map((e) => parseFloat(e.style.width))")
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    overlay = page.eval_on_selector("#overlay", "img => [img.src.slice(0, 22), img.complete, img.naturalWidth]")
    assert overlay == ["data:image/png;base64,", True, 320]
    assert page.eval_on_selector("#photo", "img => img.naturalWidth") > 100
    assert "done in" in page.inner_text("#status")
