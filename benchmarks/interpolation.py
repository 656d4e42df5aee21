"""Decoding between the samples a field was fitted on: frames in time, pixels in space.

    python benchmarks/interpolation.py [--source examples/bikes_1s.mp4] [--budget 60]

**Time.** Fit a field to every other frame of a clip (half the frame rate),
then decode the frames half-way between the fitted ones and score them against
the true frames that were left out. Beside the field's own in-between frame
(latent sets blended between frame centres, ``linear``; or each time's own
set, ``nearest``), the same run scores what a player would do with the
field's fitted frames: repeat the previous one, or blend the two neighbours;
and what ``neofield decode`` shows there by default (``--between blend``).

**Space.** Fit a field to a half-size copy (FFmpeg's downscale), decode it at
the full size and score it against the full-size original, beside bicubic
upscaling of the field's own half-size frames (and of the true half-size
frames, the best a resampler could start from).

Both fits are float (no quantization) with the codec's default field for the
clip (``--arch neogrid``; ``--arch neomlp`` for the paper's field with its
latent sets' two interpolations); the PSNR is over all frames compared, 8-bit RGB.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neofield.codec import default_preset, make_field
from neofield.fields.layouts import default_segments
from neofield.fields.presets import PRESETS
from neofield.codec.build import neogrid_field
from neofield.fields.registry import AUTO_PRECISION, BATCHES, RATES
from neofield.fit import DEFAULT_BATCH, FitConfig, fit
from neofield.media import Media, Selection, read_media
from neofield.metrics import video_psnr
from neofield.render import VideoGrid, render_video
from neofield.signal import VIDEO_VALUES, Signal

ROOT = Path(__file__).resolve().parents[1]


ARCH = "neogrid"  # --arch


def fitted(media: Media, budget: float, seed: int):
    """A float field fitted to ``media`` for ``budget`` seconds, with the codec's defaults for ``ARCH``."""
    signal = Signal(media)
    preset = default_preset(signal.kind)
    field = make_field(signal, preset, default_segments(signal), seed=seed, interpolation="linear")
    p = PRESETS[preset]
    lr, warmup, batch, precision = p.lr, p.warmup_steps, DEFAULT_BATCH, "auto"
    if ARCH == "neogrid":  # as many parameters as the paper's field, its own rate, batch and precision
        torch.manual_seed(seed)
        field = neogrid_field(signal, field.num_parameters()["total"])
        (lr, warmup), batch, precision = RATES[ARCH], BATCHES[ARCH], AUTO_PRECISION[ARCH]
    result = fit(field, signal, FitConfig(lr=lr, warmup_steps=warmup, batch_size=batch, time_budget=budget,
                                          seed=seed, precision=precision))
    return field, signal, result


def frames(field, signal: Signal, grid: VideoGrid) -> np.ndarray:
    return np.stack(list(render_video(field, signal.coordinate_map, grid, VIDEO_VALUES)))


def with_interpolation(field, mode: str):
    field.layout = replace(field.layout, interpolation=mode)
    return field


def bicubic(video: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic upscaling with pixel centres aligned (``align_corners=False``), as the field's grids are."""
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def time_test(video: np.ndarray, fps: float, budget: float, seed: int) -> list[tuple[str, float]]:
    half = Media(video=video[0::2], fps=fps / 2)
    field, signal, result = fitted(half, budget, seed)
    k, h, w = len(half.video), video.shape[1], video.shape[2]
    truth = video[1:2 * k - 1:2]  # the frames left out, each half-way between two fitted ones
    own = frames(field, signal, VideoGrid(w, h, k, fps / 2))
    between = VideoGrid(w, h, k - 1, fps / 2, start=0.5 / (fps / 2))  # times (i + 1) / (fps / 2)
    rows = [("field at the fitted frames (for reference)", video_psnr(half.video, own))]
    rows.append(("repeat the previous fitted frame", video_psnr(truth, own[:-1])))
    blend = ((own[:-1].astype(np.float32) + own[1:]) / 2).round().astype(np.uint8)
    rows.append(("blend the two fitted frames", video_psnr(truth, blend)))
    if ARCH == "neomlp":
        rows.append(("field, nearest latents", video_psnr(truth, frames(with_interpolation(field, "nearest"), signal,
                                                                        between))))
        rows.append(("field, linear latents", video_psnr(truth, frames(with_interpolation(field, "linear"), signal,
                                                                       between))))
    else:  # a pyramid is read trilinearly: between two frames it interpolates by construction
        rows.append(("field (neogrid) at the in-between times", video_psnr(truth, frames(field, signal, between))))
    # what `neofield decode` shows there by default (--between blend): the fitted frames blended before rounding
    rows.append(("the decoder's default (--between blend)",
                 video_psnr(truth, frames(field, signal, replace(between, fitted=(fps / 2, k))))))
    print(f"  time: {k} of {len(video)} frames fitted, {result.steps} steps in {result.seconds:.0f} s")
    return rows


def space_test(source: Path, selection: Selection, video: np.ndarray, budget: float, seed: int) -> list[tuple[str, float]]:
    f, h, w, _ = video.shape
    small = read_media(source, replace(selection, resize=(w // 2, h // 2)))
    field, signal, result = fitted(small, budget, seed)
    own_small = frames(field, signal, VideoGrid(w // 2, h // 2, f, small.fps))
    rows = [("field at the fitted size (for reference, vs the half-size copy)", video_psnr(small.video, own_small))]
    rows.append(("bicubic of the true half-size frames", video_psnr(video, bicubic(small.video, w, h))))
    rows.append(("bicubic of the field's half-size frames", video_psnr(video, bicubic(own_small, w, h))))
    rows.append(("field decoded at 2x", video_psnr(video, frames(field, signal, VideoGrid(w, h, f, small.fps)))))
    print(f"  space: fitted at {w // 2}x{h // 2}, {result.steps} steps in {result.seconds:.0f} s")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT / "examples" / "bikes_1s.mp4")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--resize", default=None, help="WxH of the full-size clip, e.g. 320x136")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of fitting per field")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", choices=["neogrid", "neomlp"], default="neogrid", help="the field fitted")
    args = ap.parse_args()
    global ARCH
    ARCH = args.arch
    resize = tuple(int(v) for v in args.resize.split("x")) if args.resize else None
    selection = Selection(duration=args.duration, resize=resize)
    media = read_media(args.source, selection)
    f, h, w, _ = media.video.shape
    print(f"{args.source.name}: {f} frames of {w}x{h} at {media.fps:g} fps; {args.budget:g} s of fitting per field, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    t0 = time.perf_counter()
    results = [("time", r) for r in time_test(media.video, media.fps, args.budget, args.seed)]
    results += [("space", r) for r in space_test(args.source, selection, media.video, args.budget, args.seed)]
    print("\n| test | method | PSNR (dB) |\n|---|---|---|")
    for test, (name, value) in results:
        print(f"| {test} | {name} | {value:.2f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main()
