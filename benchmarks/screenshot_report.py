"""Screenshot a `raftkit compare` report.html in headless Chromium (the README's picture).

    python benchmarks/screenshot_report.py reports/demo/report.html docs/report.png

Exits 3 when no Chromium is installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def screenshot(
    html: Path, png: Path, width: int = 1200, height: int = 1700, max_kb: int = 480
) -> Path:
    """Render `html` at width x height into `png` (shrunk to under `max_kb`);
    raises RuntimeError on failure."""
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no Chromium found (apt-get install -y chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=3000",
            f"--screenshot={raw}",
            html.resolve().as_uri(),
        ]
        # No network: the report is self-contained, and Chromium must not phone home from a test.
        env = {**os.environ, "HOME": profile}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if not raw.is_file():
            raise RuntimeError(
                f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-400:]}"
            )
        _shrink(raw, png, max_kb)
    return png


def _shrink(src: Path, dst: Path, max_kb: int) -> None:
    """Save `src` as a palette PNG, halving colours until it is under `max_kb`
    (README images stay small)."""
    from PIL import Image

    image = Image.open(src).convert("RGB")
    for colors in (256, 128, 64, 32):
        tmp = dst.with_name(dst.name + ".tmp")
        image.quantize(colors=colors).save(tmp, format="PNG", optimize=True)
        if tmp.stat().st_size <= max_kb * 1024 or colors == 32:
            os.replace(tmp, dst)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1700)
    args = parser.parse_args(argv)
    if find_browser() is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 3
    out = screenshot(args.html, args.png, args.width, args.height)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
