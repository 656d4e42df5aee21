"""A long clip fitted all at once or piece by piece, for the same total time.

    python benchmarks/long_clip.py [--source ../shared/data/bikes.mp4] [--budget 300] [--pieces 5]

The cost of a fit grows with the clip's length, and a budget shares itself over it. This encodes the
whole clip with ``neofield encode`` (the default field, ``--time-budget BUDGET``), then encodes it again
as ``--pieces`` equal pieces (``--start``/``--duration``), each with ``BUDGET / pieces`` seconds and its own default size (the
paper's field's parameter count for its frames, so about the whole one's per second), and scores both over
every frame: the pieces' PSNR is that of their pooled squared error. It prints what each second
of media got (seconds of fitting, epochs) and the bytes, so that the plan a long clip follows is measured.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import neofield
from neofield.media import Selection

ROOT = Path(__file__).resolve().parents[1]


def mse_of(psnr_db: float) -> float:
    return 255.0 ** 2 / 10 ** (psnr_db / 10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "bikes.mp4")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of fitting in all")
    ap.add_argument("--pieces", type=int, default=5)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        whole = neofield.encode(args.source, Path(folder) / "whole.nf", time_budget=args.budget, device="cpu")
        geo = neofield.load(whole.path).meta["geometry"]
        duration, v = geo["duration"], geo["video"]
        points = v["width"] * v["height"] * v["frames"]
        params = whole.parameters["total"]
        rows.append(("all at once", 1, whole.fit.seconds, whole.fit.points_per_second * whole.fit.seconds / points,
                     whole.bytes, whole.quality["video_psnr_db"], time.perf_counter() - t))
        t, errors, nbytes, seconds, visited = time.perf_counter(), [], 0, 0.0, 0.0
        length = duration / args.pieces
        for k in range(args.pieces):
            part = neofield.encode(args.source, Path(folder) / f"part{k}.nf", time_budget=args.budget / args.pieces,
                                   selection=Selection(start=k * length, duration=length), device="cpu")
            errors.append(mse_of(part.quality["video_psnr_db"]))
            nbytes += part.bytes
            seconds += part.fit.seconds
            visited += part.fit.points_per_second * part.fit.seconds
            print(f"  piece {k}: {part.quality['video_psnr_db']:.2f} dB, {part.bytes:,} bytes, "
                  f"{part.parameters['total']:,} parameters", flush=True)
        pooled = 10 * math.log10(255.0 ** 2 / (sum(errors) / len(errors)))
        rows.append((f"{args.pieces} pieces", args.pieces, seconds, visited / points, nbytes, pooled,
                     time.perf_counter() - t))
    print(f"\n{args.source.name}: {duration:.2f} s; whole-clip field {params:,} parameters; "
          f"{args.budget:g} s of fitting in all\n")
    print("| plan | fits | s of fitting | s per second of media | epochs | bytes | video PSNR dB | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, fits, secs, epochs, b, psnr, wall in rows:
        print(f"| {name} | {fits} | {secs:.0f} | {secs / duration:.1f} | {epochs:.2f} | {b:,} | {psnr:.2f} | "
              f"{wall:.0f} |")


if __name__ == "__main__":
    main()
