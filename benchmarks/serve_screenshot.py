"""Screenshot of the ``resnet serve`` page for the docs: headless Chromium (Debian's package, driven by
Playwright) uploads a real photo to a server running SOURCE and the page is captured.

    PYTHONPATH=src python benchmarks/serve_screenshot.py \
        ../shared/data/reference-weights/akamaster-cifar10/resnet56-4bfd9763.th \
        ../shared/data/imagenet-samples/images/n01641577_bullfrog.JPEG docs/serve-page.png
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

from PIL import Image

from resnet.serve import BackgroundServer, ServeConfig, create_app, load_member

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("photo", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--colors", type=int, default=128, help="palette size of the saved PNG (keeps it small)")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("serve_screenshot: no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    import tempfile

    with BackgroundServer(create_app(load_member(args.source, "fp32"), ServeConfig(), mode="fp32")) as url, \
            tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=chromium, headless=True, args=FLAGS,
                                                        viewport={"width": 1000, "height": 560})
        page = context.new_page()
        page.goto(url + "/")
        page.set_input_files("#file", str(args.photo))
        page.wait_for_selector("#results.shown", timeout=120_000)
        png = page.screenshot(full_page=True)
        context.close()
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(args.colors)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {img.width}x{img.height}, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
