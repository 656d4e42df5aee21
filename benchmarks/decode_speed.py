"""Decode speed at a large frame size: frames per second of ``neofield decode`` on this machine.

    python benchmarks/decode_speed.py BUNDLE.nf [BUNDLE.nf ...] [--size 1280x720] [--seconds 1.0] [--chunks 2048 16384]
        [--compiled]

Each bundle is decoded by the codec itself (``neofield.decode``: planning, the cost check, rendering,
H.264 encoding of the frames, the atomic write) at ``--size`` for ``--seconds`` of its video (pictures
only), eagerly, and timed end to end. With ``--compiled`` it is decoded twice more with ``--compile on``
(what ``auto`` picks for a decode of 30 s or more): the first run's extra time over the second is the
compiling, the second's speed the compiled decode's (inductor's kernels cached). With ``--chunks`` the
field is also evaluated at several chunk sizes (points per forward pass), the knob that decides how a
cheap field's small operations amortise, and a NeoGrid field's layer alone on one chunk by either path:
point-major (training's) and feature-major (a decode's).
The first bundle is the reference the others' speed is divided by; each row gives the field's
multiply-adds per pixel as ``neofield info`` counts them. A crop of a quarter of the frame
(``--crop``) is timed too, to show a decode's cost follows its area.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import neofield
from neofield.fields.cost import macs_per_point
from neofield.fields.registry import arch_of
from neofield.options import parse_size
from neofield.render import Evaluator


def timed_decode(bundle: Path, out: Path, size: tuple[int, int], seconds: float, compile_mode: str = "off",
                 **kw) -> tuple[float, int, int]:
    t = time.perf_counter()
    report = neofield.decode(bundle, out, size=size, end=seconds, compile_mode=compile_mode, force=True, **kw)
    return time.perf_counter() - t, report.plan.video.frames, report.plan.points


def chunk_speed(field, chunk: int, points: int = 1 << 18) -> float:
    coords = torch.rand(points, field.config.in_features) * 2 - 1
    run = Evaluator(field, chunk)
    run(coords[:chunk])  # warm-up
    t = time.perf_counter()
    run(coords)
    return points / (time.perf_counter() - t)


def layer_speeds(field, chunk: int, repeats: int = 7) -> tuple[float, float] | None:
    """A NeoGrid layer's points/s on one chunk of reads, best of ``repeats``: training's point-major path
    (``fused``) and a decode's feature-major one (``fast_by_feature``); None for other fields."""
    backbone = getattr(field, "backbone", None)
    if not hasattr(backbone, "fast_by_feature") or not backbone.folds:
        return None
    coords = torch.rand(chunk, field.config.in_features) * 2 - 1
    with torch.no_grad():
        levels = field.layout.gather(field.latents.table, coords).reshape(chunk, -1)
        speeds = []
        for path in (backbone.fused, backbone.fast_by_feature):
            path(levels)  # warm-up, and the fold kept
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                path(levels)
                best = min(best, time.perf_counter() - t)
            speeds.append(chunk / best)
    return speeds[0], speeds[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds of video decoded from each bundle")
    ap.add_argument("--chunks", type=int, nargs="*", default=[], help="chunk sizes to time the field at")
    ap.add_argument("--compiled", action="store_true", help="time compiled decodes too")
    args = ap.parse_args(argv)
    w, h = parse_size(args.size)
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        for bundle in args.bundles:
            b = neofield.load(bundle)
            seconds = min(args.seconds, b.meta["geometry"]["duration"])
            took, frames, points = timed_decode(bundle, Path(folder) / "out.mp4", (w, h), seconds)
            fps = frames / took
            reference = reference or fps
            crop = (w // 4, h // 4, w // 2, h // 2)
            crop_took, _, crop_points = timed_decode(bundle, Path(folder) / "crop.mp4", (w, h), seconds, crop=crop)
            compiled = "-"
            if args.compiled:
                first = timed_decode(bundle, Path(folder) / "out.mp4", (w, h), seconds, "on")[0]
                again = timed_decode(bundle, Path(folder) / "out.mp4", (w, h), seconds, "on")[0]
                compiled = f"{frames / again:.2f} (+{first - again:.0f} s compiling)"
            rows.append((bundle.name, arch_of(b.field), macs_per_point(b.field, slice(*b.meta["outputs"]["video"])),
                         frames, took, fps, fps / reference,
                         points / took, crop_took / took, crop_points / points, compiled))
            for chunk in args.chunks:
                print(f"  {bundle.name}: chunk {chunk:,}: {chunk_speed(b.field, chunk):,.0f} points/s", flush=True)
                layer = layer_speeds(b.field, chunk)
                if layer:
                    print(f"  {bundle.name}: its layer alone, chunk {chunk:,}: {layer[0]:,.0f} points/s point-major "
                          f"(training's path), {layer[1]:,.0f} feature-major (a decode's): {layer[1] / layer[0]:.2f}x",
                          flush=True)
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}; decode to H.264 at {w}x{h}\n")
    print("| bundle | field | MACs/pixel | frames | eager s | eager frames/s | vs first | points/s | "
          "quarter crop: time / area | compiled frames/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, arch, macs, frames, took, fps, ratio, pps, crop_t, crop_a, compiled in rows:
        print(f"| {name} | {arch} | {macs:,} | {frames} | {took:.1f} | {fps:.2f} | {ratio:.1f}x | {pps:,.0f} | "
              f"{crop_t:.2f} / {crop_a:.2f} | {compiled} |")


if __name__ == "__main__":
    main()
