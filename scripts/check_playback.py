"""Check that decoded files play in a real browser, the way people will open them.

PyAV reading a file back proves FFmpeg can decode it, not that a browser will:
Chromium refuses H.264 High 4:4:4 (our exact RGB mode) and plays only some
codec/container pairs. This script serves the files on 127.0.0.1, opens each
in headless Chromium through Playwright, plays it, and reports what the page
saw: the media error if any, duration, size, and whether playback advanced.

    apt-get install -y chromium          # Debian's Chromium (no browser download)
    .venv/bin/pip install -e '.[check]'  # Playwright's Python driver
    .venv/bin/python scripts/check_playback.py out/bikes_x2.mp4 out/bikes.webm --screenshots out/shots

Exit status 1 when any file fails to play; ``--codecs`` prints what this
Chromium says it can play (``canPlayType``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--autoplay-policy=no-user-gesture-required"]
AUDIO = {".wav", ".flac", ".ogg", ".opus", ".m4a", ".mp3"}
IMAGES = {".gif", ".png", ".jpg", ".jpeg", ".webp"}
CODECS = {
    "H.264 in mp4": 'video/mp4; codecs="avc1.42E01E"', "H.264 High in mp4": 'video/mp4; codecs="avc1.640028"',
    "H.264 4:4:4 in mp4": 'video/mp4; codecs="avc1.F4001F"', "H.265 in mp4": 'video/mp4; codecs="hvc1.1.6.L93.B0"',
    "AV1 in mp4": 'video/mp4; codecs="av01.0.05M.08"', "VP9 in webm": 'video/webm; codecs="vp9"',
    "AAC in mp4": 'audio/mp4; codecs="mp4a.40.2"', "Opus in webm": 'audio/webm; codecs="opus"',
    "FLAC in mp4": 'audio/mp4; codecs="flac"', "FLAC": "audio/flac", "MP3": "audio/mpeg", "WAV": "audio/wav",
}

PLAY = """async (el) => {
  const done = (extra) => ({error: el.error ? {code: el.error.code, message: el.error.message} : null,
                            duration: el.duration, width: el.videoWidth || 0, height: el.videoHeight || 0,
                            time: el.currentTime, ...extra});
  await new Promise((resolve) => {
    if (el.readyState >= 1 || el.error) return resolve();
    el.addEventListener('loadedmetadata', resolve, {once: true});
    el.addEventListener('error', resolve, {once: true});
    setTimeout(resolve, 10000);
  });
  if (el.error) return done({played: false});
  el.muted = true;
  try { await el.play(); } catch (e) { return done({played: false, reason: String(e)}); }
  await new Promise((resolve) => {
    const check = () => (el.currentTime > 0.05 || el.ended || el.error) ? resolve() : setTimeout(check, 50);
    check(); setTimeout(resolve, 10000);
  });
  return done({played: el.currentTime > 0.05 || el.ended});
}"""


FIRST_FRAME = """(el) => new Promise((resolve) => {
  el.pause(); el.addEventListener('seeked', () => setTimeout(resolve, 200), {once: true});
  el.currentTime = 0; setTimeout(resolve, 5000);
})"""
MIN_PICTURE_PSNR = 25.0  # below this the browser shows another picture than FFmpeg decodes (e.g. false colours)


def picture_psnr(screenshot: bytes, file: Path) -> float | None:
    """PSNR of what the browser shows at t = 0 against the first frame FFmpeg decodes.

    Catches files that "play" with the wrong picture: Chromium plays H.264 RGB
    (High 4:4:4, gbrp) but shows its planes as if they were YUV.
    """
    import av
    import imageio.v3 as iio
    import numpy as np

    shown = iio.imread(screenshot)[..., :3].astype(np.float64)
    with av.open(str(file)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float64)
    if shown.shape != frame.shape:
        return None
    mse = float(np.mean((shown - frame) ** 2))
    return round(10 * np.log10(255**2 / mse), 2) if mse else float("inf")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges (206), which browsers use to read media."""

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        header = self.headers.get("Range")
        if not header or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, _, last = header.removeprefix("bytes=").partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(int(last), size - 1) if first and last else size - 1
        f = open(path, "rb")  # noqa: SIM115 (the base class closes it after copying)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return _Limited(f, end - start + 1)


class _Limited:
    """A file object that reads at most ``n`` bytes (the requested range)."""

    def __init__(self, f, n: int):
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.f.close()


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def page(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in IMAGES:
        return f'<img id="m" src="{name}">'
    tag = "audio" if suffix in AUDIO else "video"
    return f'<{tag} id="m" src="{name}" preload="auto" playsinline></{tag}>'


def check(files: list[Path], chromium: str, shots: Path | None, timeout: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory(prefix="playback-") as root, sync_playwright() as pw:
        root = Path(root)
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        server, base = serve(root)
        try:
            for i, file in enumerate(files):
                name = f"{i}{file.suffix.lower()}"
                shutil.copyfile(file, root / name)
                (root / f"{i}.html").write_text(f"<!doctype html><body style='margin:0;background:#222'>"
                                                f"{page(name)}</body>")
                tab = browser.new_page()
                tab.set_default_timeout(timeout * 1000)
                tab.goto(f"{base}/{i}.html")
                element = tab.locator("#m")
                if file.suffix.lower() in IMAGES:
                    tab.wait_for_load_state("load")
                    w, h = element.evaluate("el => [el.naturalWidth, el.naturalHeight]")
                    seen = {"played": w > 0, "width": w, "height": h, "error": None, "duration": None, "time": None}
                else:
                    seen = element.evaluate(PLAY)
                    if seen["played"] and seen["width"]:
                        element.evaluate(FIRST_FRAME)
                        seen["picture_psnr_db"] = picture_psnr(element.screenshot(), file)
                if shots is not None:
                    shots.mkdir(parents=True, exist_ok=True)
                    tab.screenshot(path=str(shots / f"{file.stem}{file.suffix.replace('.', '_')}.png"))
                tab.close()
                results.append({"file": str(file), **seen})
        finally:
            server.shutdown()
            browser.close()
    return results


def can_play(chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        tab = browser.new_page()
        out = tab.evaluate("""(types) => Object.fromEntries(Object.entries(types).map(([k, t]) =>
            [k, document.createElement(t.startsWith('audio') ? 'audio' : 'video').canPlayType(t) || 'no']))""", CODECS)
        out["browser"] = browser.version
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--screenshots", type=Path, help="save a screenshot of each page here")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--codecs", action="store_true", help="print what this Chromium can play")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        print(f"error: no Chromium at {args.chromium} (apt-get install chromium, or --chromium PATH)",
              file=sys.stderr)
        return 2
    if args.codecs:
        table = can_play(args.chromium)
        print(json.dumps(table, indent=2) if args.json else
              "\n".join(f"| {k} | {v} |" for k, v in table.items()))
    missing = [f for f in args.files if not f.is_file()]
    if missing:
        print(f"error: {missing[0]} does not exist", file=sys.stderr)
        return 2
    results = check(args.files, args.chromium, args.screenshots, args.timeout) if args.files else []
    for r in results:
        if (r.get("picture_psnr_db") or 99) < MIN_PICTURE_PSNR:
            r["played"], r["reason"] = False, "shows another picture than FFmpeg decodes"
    if args.json:
        print(json.dumps(results, indent=2))
    elif results:
        print("| file | plays | error | duration (s) | size | played to (s) | picture vs FFmpeg (dB) |\n"
              "|---|---|---|---|---|---|---|")
        for r in results:
            shown = r.get("picture_psnr_db")
            err = f"{r['error']['code']}: {r['error']['message']}" if r.get("error") else r.get("reason", "")
            dur = f"{r['duration']:.3f}" if isinstance(r.get("duration"), (int, float)) else "-"
            t = f"{r['time']:.2f}" if isinstance(r.get("time"), (int, float)) else "-"
            print(f"| {r['file']} | {'yes' if r['played'] else 'NO'} | {err} | {dur} | "
                  f"{r['width']}x{r['height']} | {t} | {'-' if shown is None else shown} |")
    return 0 if all(r["played"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
