"""The default encode at every clip length: bytes, PSNR and x264's bytes at that PSNR, piece by piece.

    python benchmarks/default_lengths.py [--source ../shared/data/bikes.mp4] [--lengths 1,2.5,5,10]
                                         [--resize WxH] [--budget S] [--fixed]

For each length L, the first L seconds of the clip are encoded with ``neofield.encode``'s defaults (no
target, no depths: the rate term at the default lambda, on a field the budget sizes; ``--budget``
replaces the default 150 epochs or 5 minutes by a time budget), scored whole by ``neofield.psnr``, and
x264 medium (yuv444p, a CRF ladder) encodes the same frames in the same run: the ratio column is the
bundle's bytes over x264's at the bundle's PSNR (log-size interpolation between the ladder's points).
``--fixed`` adds the fixed-depth encode (``bits=6``, the preset's field: the default before the rate
term) beside each. A default that stays sane keeps its bits per pixel and its ratio to x264 in a band
as the clip grows, and its PSNR falls only as the fit's passes do.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import neofield
from neofield.media import Selection, read_media
from neofield.metrics import video_psnr

from vs_codecs import VIDEO_CODECS, decode_video, encode_video, size_at

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
X264 = "x264 medium yuv444p"


def x264_bytes_at(frames, fps: float, psnr: float) -> tuple[str, list[tuple[float, int]]]:
    """x264 medium's bytes at ``psnr`` dB on ``frames`` (interpolated on its CRF ladder), and the ladder."""
    codec, pix, knob, values, opts = VIDEO_CODECS[X264]
    ladder = []
    for v in values:
        data = encode_video(frames, fps, codec, pix, {**opts, knob: v})
        ladder.append((video_psnr(frames, decode_video(data)), len(data)))
    return size_at(psnr, ladder), ladder


def row(source: Path, folder: Path, length: float, resize, budget: float | None, fixed: bool, points: int) -> dict:
    """One encode of the first ``length`` seconds (``points`` pixels in all), scored whole."""
    selection = Selection(duration=length, resize=resize)
    out = folder / f"{length:g}_{'fixed' if fixed else 'default'}.nf"
    kw = {"bits": neofield.BitDepths(6, 6)} if fixed else {}
    if budget is not None:
        kw["time_budget"] = budget
    report = neofield.encode(source, out, selection=selection, force=True, **kw)
    scores = neofield.psnr(source, out)
    meta = neofield.load(out).meta
    epochs = report.fit.steps * meta["fit"]["config"]["batch_size"] / points
    return {"length": length, "encode": "bits 6" if fixed else f"lambda {meta['quantization']['lambda']:g}",
            "params": report.parameters["total"], "epochs": epochs, "seconds": report.fit.seconds,
            "bytes": report.bytes, "psnr": scores["video_psnr_db"], "bpp": scores["bits_per_pixel"],
            "kbps": scores["kbps"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DATA / "bikes.mp4")
    ap.add_argument("--lengths", default="1,2.5,5,10", help="seconds from the start, comma-separated")
    ap.add_argument("--resize", default=None, help="WxH of the clip, e.g. 320x136 (default: its own size)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of fitting (default: the encoder's)")
    ap.add_argument("--fixed", action="store_true", help="also encode at fixed depths (bits 6), the old default")
    args = ap.parse_args(argv)
    resize = tuple(int(v) for v in args.resize.split("x")) if args.resize else None
    lengths = [float(v) for v in args.lengths.split(",")]
    print(f"{args.source.name}, first {', '.join(f'{v:g}' for v in lengths)} s"
          f"{f' at {args.resize}' if resize else ''}; fitting: {f'{args.budget:g} s' if args.budget else 'the default'}"
          f"; torch {torch.__version__}, {torch.get_num_threads()} threads\n", flush=True)
    print("| length s | encode | parameters | epochs | fit s | bytes | kbps | bits/pixel | PSNR dB "
          "| x264 bytes at that PSNR | bundle / x264 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for length in lengths:
            media = read_media(args.source, Selection(duration=length, resize=resize))
            for fixed in ([False, True] if args.fixed else [False]):
                r = row(args.source, Path(tmp), length, resize, args.budget, fixed, media.video.size // 3)
                at, _ = x264_bytes_at(media.video, media.fps, r["psnr"])
                ratio = f"{r['bytes'] / float(at.strip('~<=').replace(',', '')):.2f}x" if at[0] in "~<" else "-"
                print(f"| {length:g} | {r['encode']} | {r['params']:,} | {r['epochs']:.2f} | {r['seconds']:.0f} | "
                      f"{r['bytes']:,} | {r['kbps']:.1f} | {r['bpp']:.3f} | {r['psnr']:.2f} | {at} | {ratio} |",
                      flush=True)


if __name__ == "__main__":
    main()
