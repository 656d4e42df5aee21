"""nu-sets on a CPU: the latent table's optimiser, digits classification, and a collection of clips.

    python benchmarks/nusets.py [--parts optimizer digits collection] [--epochs 40] [--seeds 3]

* ``optimizer``: Algorithm 1 on scikit-learn's digits with lazy Adam (only the
  latent sets a batch touched move) against dense Adam, at equal steps: PSNR,
  and seconds per step; then the cost of one optimiser step on a table of
  MNIST's size (60,000 signals), where dense Adam touches every row.
* ``digits``: the paper's pipeline on digits (Algorithm 1 on the training split,
  Algorithm 2 on both splits, an MLP on the nu-reps, mean ± std over seeds), with
  an MLP on the raw pixels as the reference measured in the same run.
* ``collection``: 6 clips of 10 frames cut from bikes.mp4 (96x40), stored as one
  set bundle (one backbone, each clip its latents) against six single-clip
  encodes at the same steps per clip, both quantized and range coded as the
  codec stores them: bytes per clip and PSNR at the default depths.

Run nothing else meanwhile: the seconds are timed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from equal_time import DATA, cpu_name  # noqa: E402

from neofield.fit import FitConfig  # noqa: E402
from neofield.sets.classify import evaluate  # noqa: E402
from neofield.sets.data import SignalSet, load_set  # noqa: E402
from neofield.sets.field import SetField  # noqa: E402
from neofield.sets.fit import fit_latents, fit_set, save_set  # noqa: E402

ALG1 = dict(lr=5e-3, warmup_steps=30, batch_size=1024, device="cpu", compile="off")  # the CLI's defaults


def optimizer_part(epochs: float) -> None:
    train = load_set("digits", "train")
    print(f"\n## Latent table optimiser: digits train split ({len(train):,} signals), {epochs:g} epochs of "
          "batch 1,024, seed 0\n")
    print("| optimiser | steps | s | s per step | mean PSNR dB | lowest |\n|---|---:|---:|---:|---:|---:|")
    for name in ("lazy", "adam"):
        r = fit_set(train, FitConfig(epochs=epochs, seed=0, **ALG1), latent_optimizer=name)
        s = r.summary()
        print(f"| {name} | {s['steps']:,} | {s['seconds']:.1f} | {s['seconds'] / s['steps'] * 1e3:.2f} ms | "
              f"{s['mean_psnr_db']:.2f} | {s['min_psnr_db']:.2f} |", flush=True)
    # one step's cost on a table of MNIST's size: 60,000 signals x 3 tokens x 32
    from neofield.fields.layouts import TimeSegments
    from neofield.fields.presets import build_config

    config = build_config("tiny", 3, 1, kind="video")
    print("\n| optimiser, 60,000-signal table | ms per optimiser step (batch 1,024 touches <= 1,024 sets) |\n|---|---:|")
    for name in ("lazy", "adam"):
        field = SetField(config, TimeSegments(60_000), 1, name)
        opt = field.make_optimizer(1e-3)
        ids = torch.randint(0, 60_000, (1024,))
        coords = torch.cat([torch.rand(1024, 3) * 2 - 1, ids.float()[:, None]], 1)
        times = []
        for _ in range(30):
            opt.zero_grad()
            field(coords).square().mean().backward()
            t = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - t)
        print(f"| {name} | {np.median(times[5:]) * 1e3:.2f} |", flush=True)


def digits_part(epochs: float, seeds: int) -> None:
    """Algorithm 1 once; Algorithm 2 with its defaults and two departures from them; the classifier on each."""
    train, test = load_set("digits", "train"), load_set("digits", "test")
    print(f"\n## Digits: Algorithm 1 on the training split ({epochs:g} epochs), Algorithm 2 on both splits "
          f"(16 points of every signal per step, lr 0.1), an MLP over {seeds} seeds\n")
    t = time.perf_counter()
    alg1 = fit_set(train, FitConfig(epochs=epochs, seed=0, **ALG1))
    fit_s = time.perf_counter() - t
    print(f"Algorithm 1: {len(train):,} signals, PSNR {alg1.psnr.mean():.2f} dB (lowest {alg1.psnr.min():.2f}), "
          f"{fit_s:.0f} s\n", flush=True)
    labels = [torch.as_tensor(d.labels) for d in (train, test)]
    pixels = [torch.as_tensor(d.values.reshape(len(d), -1), dtype=torch.float32) for d in (train, test)]
    ref = evaluate(pixels[0], labels[0], pixels[1], labels[1], seeds=tuple(range(seeds)))
    print("| Algorithm 2 | train PSNR dB | test PSNR dB (lowest) | s (both splits) | accuracy on the nu-reps |\n"
          "|---|---:|---:|---:|---|")
    for name, steps, init in (("defaults: 150 steps from the mean latent set", 150, "mean"),
                              ("300 steps", 300, "mean"), ("from N(0, 1e-3), the paper's start", 150, "normal")):
        config = FitConfig(lr=0.1, warmup_steps=10, steps=steps, seed=0, device="cpu", compile="off")
        t = time.perf_counter()
        reps = [fit_latents(alg1.field, alg1.signal.layout(), d, config, init=init) for d in (train, test)]
        enc_s = time.perf_counter() - t
        feats = [r.field.latents.table.detach().flatten(1) for r in reps]
        ours = evaluate(feats[0], labels[0], feats[1], labels[1], seeds=tuple(range(seeds)))
        print(f"| {name} | {reps[0].psnr.mean():.2f} | {reps[1].psnr.mean():.2f} ({reps[1].psnr.min():.2f}) | "
              f"{enc_s:.0f} | **{ours.summary()}** |", flush=True)
    print(f"\nthe same classifier on the raw pixels (64 features): {ref.summary()}", flush=True)


def collection_part(steps_per_clip: int) -> None:
    """The set against each clip alone, both quantized at the codec's default depths and range coded, at
    equal steps per clip: bytes per clip and PSNR, clip by clip."""
    from neofield.codec import encode
    from neofield.media import Selection, read_media, write_video
    from neofield.quantize import BitDepths

    clips = [read_media(DATA / "bikes.mp4", Selection(start=1.0 * k, max_frames=10, resize=(96, 40))).video
             for k in range(6)]
    data = SignalSet("video", np.stack(clips), None, (), tuple(f"bikes@{k}s" for k in range(6)), rate=25.0,
                     source="bikes.mp4, 6 clips of 10 frames at 96x40")
    n, bits = len(clips), BitDepths()
    print(f"\n## A collection: {data.source}; {steps_per_clip:,} steps of 1,024 points per clip, quantized to "
          f"{bits.backbone:g} bits and range coded\n")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        report = fit_set(data, FitConfig(steps=steps_per_clip * n, seed=0, **ALG1), weights_dtype="quantized")
        set_bytes = save_set(tmp / "set.nf", report)
        alone = []
        for k, frames in enumerate(clips):
            write_video(tmp / f"clip{k}.mp4", iter(frames), 25.0, lossless=True)
            r = encode(tmp / f"clip{k}.mp4", tmp / f"clip{k}.nf", steps=steps_per_clip, batch_size=1024,
                       device="cpu", compile_mode="off", latents="nearest")
            alone.append((r.bytes, r.quality["video_psnr_db"], r.fit.seconds))
    b, p, t = (np.array([a[i] for a in alone]) for i in range(3))
    print("| storage | bytes per clip | mean PSNR dB | fit s |\n|---|---:|---:|---:|")
    print(f"| one set bundle (`neofield set fit FOLDER`) | **{set_bytes / n:,.0f}** | {report.psnr.mean():.2f} | "
          f"{report.seconds:.0f} |")
    print(f"| each clip alone (`neofield encode --latents nearest`) | {b.mean():,.0f} | {p.mean():.2f} | "
          f"{t.sum():.0f} |")
    print("\n| clip | PSNR in the set | PSNR alone | bytes alone |\n|---|---:|---:|---:|")
    for k in range(n):
        print(f"| {data.names[k]} | {report.psnr[k]:.2f} | {p[k]:.2f} | {b[k]:,} |")
    print(f"\nA clip in the set takes {b.mean() / (set_bytes / n):.1f}x fewer bytes than alone, at "
          f"{report.psnr.mean() - p.mean():+.2f} dB of mean PSNR.", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", choices=["optimizer", "digits", "collection"],
                    default=["optimizer", "digits", "collection"])
    ap.add_argument("--epochs", type=float, default=40.0, help="Algorithm 1's epochs on digits")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--clip-steps", type=int, default=1500, help="steps per clip in the collection part")
    args = ap.parse_args(argv)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, no GPU")
    if "optimizer" in args.parts:
        optimizer_part(args.epochs)
    if "digits" in args.parts:
        digits_part(args.epochs, args.seeds)
    if "collection" in args.parts:
        collection_part(args.clip_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
