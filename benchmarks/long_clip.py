"""A long clip fitted all at once, or piece by piece, for the same seconds of fitting and the same bytes.

    python benchmarks/long_clip.py [--source ../shared/data/bikes.mp4] [--pieces 5] [--budget 300] [--resize WxH]

**All at once**: ``neofield encode`` of the whole clip with the codec's defaults and ``--time-budget
BUDGET``: one field over the whole clip, its size the default. **Piece by piece**: ``--pieces N``
encodes of ``duration / N`` seconds each (``--start``, ``--duration``), each with ``BUDGET / N``
seconds of fitting and ``--size`` of a piece's share of the whole clip's bundle, so both spend the same
time and (within rate control's +-10 %) the same bytes. Each bundle is decoded at its own grid and the
frames, put end to end, scored against the whole clip: 8-bit RGB PSNR over every frame. The ratio
column is each row's bytes and PSNR against the first's, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import neofield
from neofield.media import Selection, read_media
from neofield.metrics import video_psnr
from neofield.render import render_media

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def decoded_frames(bundle: Path) -> np.ndarray:
    b = neofield.load(bundle)
    return render_media(b.field, b.meta).video


def encode(source: Path, out: Path, budget: float, resize, **kw) -> tuple[int, float, int]:
    """(bytes, seconds of fitting, steps) of one encode."""
    report = neofield.encode(source, out, time_budget=budget, force=True,
                             selection=Selection(resize=resize, **{k: kw.pop(k) for k in ("start", "duration")
                                                                    if k in kw}), **kw)
    return report.bytes, report.fit.seconds, report.fit.steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DATA / "bikes.mp4")
    ap.add_argument("--pieces", type=int, default=5)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of fitting in all, per method")
    ap.add_argument("--resize", default=None, help="WxH of the clip, e.g. 320x136")
    args = ap.parse_args(argv)
    resize = tuple(int(v) for v in args.resize.split("x")) if args.resize else None
    whole = read_media(args.source, Selection(resize=resize))
    frames = len(whole.video)
    seconds = frames / whole.fps
    print(f"{args.source.name}: {frames} frames of {whole.video.shape[2]}x{whole.video.shape[1]} at {whole.fps:g} "
          f"fps ({seconds:g} s); {args.budget:g} s of fitting per method; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        size, fit_s, steps = encode(args.source, Path(folder) / "whole.nf", args.budget, resize)
        psnr = video_psnr(whole.video, decoded_frames(Path(folder) / "whole.nf"))
        rows.append(("all at once", 1, size, fit_s, steps, psnr, time.perf_counter() - t))
        print(f"  all at once: {size:,} B, {psnr:.2f} dB", flush=True)
        t, sizes, fits, steps, parts = time.perf_counter(), 0, 0.0, 0, []
        piece = seconds / args.pieces
        for i in range(args.pieces):
            out = Path(folder) / f"piece{i}.nf"
            b, f, s = encode(args.source, out, args.budget / args.pieces, resize, start=i * piece, duration=piece,
                             size=round(size / args.pieces))
            sizes, fits, steps = sizes + b, fits + f, steps + s
            parts.append(decoded_frames(out))
            print(f"  piece {i + 1}/{args.pieces}: {len(parts[-1])} frames, {b:,} B", flush=True)
        pieced = np.concatenate(parts)
        if len(pieced) != frames:
            raise SystemExit(f"the pieces hold {len(pieced)} frames, the clip {frames}")
        rows.append((f"{args.pieces} pieces of {piece:g} s", args.pieces, sizes, fits, steps,
                     video_psnr(whole.video, pieced), time.perf_counter() - t))
    first = rows[0]
    print("\n| method | bundles | bytes | fit s | steps | PSNR (dB) | bytes vs first | dB vs first | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, b, f, s, p, wall in rows:
        print(f"| {name} | {n} | {b:,} | {f:.0f} | {s:,} | {p:.2f} | {b / first[2]:.2f}x | {p - first[5]:+.2f} | "
              f"{wall:.0f} |")


if __name__ == "__main__":
    main()
