"""NeoMLP against SIREN and an RFF-MLP at equal wall-clock budgets, same run, same machine.

    python benchmarks/equal_time.py [--signals bikes bach bbb] [--models neomlp neomlp-tiny neomlp-small siren rffnet]
                                    [--budget SECONDS] [--long] [--threads N] [--seed S] [--data DIR] [--csv FILE]

Every model is fitted by neofield's own loop (``neofield.fit.fit``: i.i.d.
batches of 4,096 points over the whole signal, Adam, warm-up then cosine,
gradient clipping at 1) under ``FitConfig(time_budget=B)`` with its own
learning rate and warm-up, then rendered on the signal's own grid with
``render_media`` and scored with ``neofield.quality.compare``: the float
field's PSNR over every frame and sample (no quantization, no bundle).

Besides PSNR each row reports what the time bought: steps, epochs, training
points/s, and the matmul GFLOP/s those points/s amount to, as a fraction of a
float32 and bfloat16 ``torch.mm`` peaks timed in the same run. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` on one batch, so they count
matrix products only (linear layers, attention's products), not sin/cos,
GELU, layer norms or softmax, nor Adam; MACs per decoded sample are
``neofield.fields.cost.macs_per_point``: the forward's matrix products plus
its latent reads, as ``neofield info`` reports them.

The signals (``SIGNALS``) are the ones of docs/cpu-defaults.md and
benchmarks/rd.py; the models (``MODELS``) are the codec's default preset with
default latent segments, the other CPU presets, SIREN 5 x 256 and an
RFF-MLP 4 x 256 (both ~198 k parameters, neofield.fields.baselines).
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from neofield.codec import default_preset, make_field, sound_sigma
from neofield.fields.layouts import default_segments
from neofield.fields.baselines import RFFNet, RFFNetConfig, Siren, SirenConfig
from neofield.codec.build import grid_field, neogrid_field
from neofield.fields.cost import macs_per_point
from neofield.fields.registry import AUTO_PRECISION, BATCHES, GRID_AUDIO_SHARE, RATES, baseline_for, rffnet_sigma
from neofield.fields.presets import PRESETS
from neofield.fit import DEFAULT_BATCH, FitConfig, fit
from neofield.runtime import COMPILE_MODES
from neofield.probe import masked_mse
from neofield.media import Selection, read_media
from neofield.compare import compare
from neofield.render import render_media
from neofield.runtime import PRECISIONS, resolve_precision
from neofield.signal import Signal

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
BATCH = 4096


@dataclass(frozen=True)
class Clip:
    file: str
    selection: Selection
    budgets: tuple[float, ...]  # seconds of fitting per model
    long_budgets: tuple[float, ...] = ()  # added with --long
    label: str = ""


SIGNALS: dict[str, Clip] = {
    "bikes": Clip("bikes.mp4", Selection(duration=2.0, resize=(320, 136)), (90.0,), (600.0,),
                  "bikes, first 2 s at 320x136 (50 frames, 2.18 M points)"),
    "bach": Clip("gt_bach.wav", Selection(), (120.0,), (), "gt_bach.wav, whole (6.99 s mono 44.1 kHz, 308 k points)"),
    "bbb": Clip("bigbuckbunny.mp4", Selection(duration=1.0, resize=(320, 180)), (120.0,), (),
                "bigbuckbunny.mp4, first 1 s at 320x180 + 6-ch 48 kHz sound"),
}


# Baseline settings, from a quick sweep at equal steps (2-core CPU, torch 2.13.0, 1 thread, batch 4,096, seed 0,
# 5x256 SIREN / 4x256 RFF-MLP as below; float PSNR over the whole piece). Equal steps rather than equal time, so
# that the other work on the shared machine could not bias it; the step counts are ~1/8 to 1/3 of what the
# full budgets give, so the choices lean towards rates that converge fast.
#   SIREN lr (no warm-up)         1e-4    3e-4    1e-3
#     bikes 2 s 320x136, 400 st   27.16   29.83   27.56
#     bach whole, 500 steps       34.64   36.22   22.36 (unstable)
#     bach whole, 1,500 steps     38.15   40.26
#   (on 0.2 s of bikes / 1 s of bach with the epochs of the full runs: 34.99 / 36.77 / 37.63 and
#   38.97 / 45.61 at 1e-4 / 3e-4, 35.38 at 3e-5.)
#   The paper's 1e-4 (its video rate; 5e-5 was its full-batch audio rate) is a long-run GPU setting: 3e-4 is
#   +1.6 to +2.7 dB here, and 1e-3 breaks on audio. No warm-up, as in the paper.
#   RFF-MLP (warm-up 50)          bikes (sx, sy, st), 400 steps        bach sigma, 500 steps
#     lr 1e-3                     (1,1,.5) 24.66  (2,2,1) 25.07        10: 38.09  20: 38.68  50: 31.53
#                                 (5,5,2) 20.63                        (lr 3e-4, 50: 25.76)
#     lr 3e-3                     (2,2,1) 27.37                        20: 42.45  30: 41.85  50: 36.67
#   Tancik et al.'s lr 1e-3 is slow at these step counts; 3e-3 gains 2.3 to 5 dB.
#   bbb 1 s 320x180 + 6 ch, lr 3e-3, 400 steps, video / audio PSNR (audio SNR): (2,2,1) 23.22 / 57.09 (-0.02),
#     (2,2,5) 23.16 / 57.10 (-0.01), (2,2,20) 23.22 / 57.19 (+0.08): the audio stays at silence whatever t's sigma.
#   That silence was a bug: under bfloat16 autocast the RFF-MLP's phases were a bfloat16 matmul, hundreds of radians
#   off on audio time. With them in float32 (RFFNet.features), 30 s at batch 4,096 on Bach gives 41.60 dB at 1e-3
#   and 44.63 at 3e-3 (sigma 15.6, the spectral one); on bbb (2,2,50) 23.43 / 58.39 at 1e-3, 23.85 / 58.80 at 3e-3.
SIREN_LR, SIREN_WARMUP = RATES["siren"]
RFF_LR, RFF_WARMUP = RATES["rffnet"]
# RFF sigma in cycles per field unit, per kind: (x, y, t) for pictures, t for sound. Pictures' axes span
# [-1, 1]; audio time runs at 200/7 units per second (+-100 for 7 s), so an audio sigma s puts the
# frequencies' std at s * 28.6 Hz. An audio-visual field shares the audio time axis for its frames too.
# The values live in neofield.fields.registry (rffnet_sigma), which --arch rffnet uses too: a sound's time axis
# takes the sound's spectral sigma.
MODELS = ["neomlp", "neomlp-tiny", "neomlp-small", "neogrid", "neogrid-200k", "grid", "grid-200k", "siren",
          "siren-matched", "rffnet"]
# Matmul precision per model (neofield.runtime). NeoMLP and the RFF-MLP take the codec's "auto": bfloat16
# where the CPU has it natively. SIREN keeps float32: its sine layers multiply every pre-activation by
# w0 = 30, so bfloat16's ~3 significant digits would put its phases off by up to ~0.1 rad.
PRECISION = {"siren": "float32", "siren-matched": "float32", **AUTO_PRECISION,  # neogrid: float32, measured faster
             "neogrid-200k": AUTO_PRECISION["neogrid"]}


def setup(name: str, signal: Signal, seed: int) -> tuple[nn.Module, float, int, str]:
    """A fresh field for ``signal``, its learning rate and warm-up, and its preset (or "").

    ``neomlp`` is what ``neofield encode`` fits: the codec's default preset for the signal's kind, one latent
    set per frame or per 1,024 audio samples, the preset's lr and warm-up. ``neomlp-<preset>`` is the same
    with another preset.
    """
    in_features, out_features = signal.coordinate_map.in_features, signal.out_features
    if name.startswith("neomlp"):
        preset = name.partition("-")[2] or default_preset(signal.kind)
        p = PRESETS[preset]
        return make_field(signal, preset, default_segments(signal), seed=seed), p.lr, p.warmup_steps, preset
    torch.manual_seed(seed)
    if name.split("-")[0] in ("neogrid", "grid"):  # what `encode --arch` fits: as many parameters as the NeoMLP
        # default field, or (neogrid-200k) as SIREN 5x256's ~200 k, what `--size` buys
        arch, _, size = name.partition("-")
        neomlp = make_field(signal, default_preset(signal.kind), default_segments(signal), seed=seed)
        torch.manual_seed(seed)
        make = neogrid_field if arch == "neogrid" else grid_field
        lr, warmup = RATES[arch]
        parameters = int(size[:-1]) * 1000 if size else neomlp.num_parameters()["total"]
        return make(signal, parameters), lr, warmup, ""
    if name == "siren":
        return Siren(SirenConfig(in_features, out_features, width=256, layers=5)), SIREN_LR, SIREN_WARMUP, ""
    if name == "siren-matched":  # as wide as gives the NeoMLP field's parameter count, latents included
        neomlp = make_field(signal, default_preset(signal.kind), default_segments(signal), seed=seed)
        siren = baseline_for("siren", in_features, out_features, neomlp.num_parameters()["total"], signal.kind,
                             seed)
        return siren, SIREN_LR, SIREN_WARMUP, f"5x{siren.config.width}"
    if name == "rffnet":
        config = RFFNetConfig(in_features, out_features, width=256, layers=4, rff_dim=256,
                              rff_sigma=rffnet_sigma(signal.kind, sound_sigma(signal)), seed=seed)
        return RFFNet(config), RFF_LR, RFF_WARMUP, ""
    raise ValueError(f"unknown model {name!r}")


COLUMNS = ["signal", "model", "preset", "precision", "params", "budget_s", "batch", "steps", "epochs", "fit_s", "video_psnr_db",
           "audio_psnr_db", "video_vs_siren_db", "audio_vs_siren_db", "train_points_per_s", "train_gflops", "peak_fraction",
           "macs_per_sample", "train_flops_per_point", "render_s", "lr", "warmup_steps"]


# ------------------------------------------------------------ measurements ----
def matmul_peak(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of the best of ``repeats`` ``n x n`` products in ``dtype`` on this machine's threads."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def flops_per_point(field: nn.Module, signal: Signal, seed: int) -> tuple[float, float]:
    """Matmul FLOPs per point of a forward pass, and of a training step's forward + backward, on one batch."""
    coords, target, mask = signal.sample(BATCH, torch.Generator().manual_seed(seed + 1))
    field.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        field(coords)
    forward = counter.get_total_flops()
    field.train()
    with FlopCounterMode(display=False) as counter:
        masked_mse(field(coords), target, mask).backward()
    train = counter.get_total_flops()
    field.zero_grad(set_to_none=True)
    return forward / BATCH, train / BATCH


def run_one(signal_name: str, signal: Signal, model_name: str, budget: float, args) -> dict:
    arch = model_name.split("-")[0]
    if arch in GRID_AUDIO_SHARE and signal.video is not None and signal.audio is not None:
        signal = Signal(signal.media, audio_share=GRID_AUDIO_SHARE[arch])  # the batches `encode --arch` draws
    field, lr, warmup, preset = setup(model_name, signal, args.seed)
    _, train_flops = flops_per_point(field, signal, args.seed)  # MACs per sample: fields.cost, below
    precision = resolve_precision(args.precision or PRECISION.get(model_name, "auto"), torch.device("cpu"))
    # NeoMLP takes the codec's batch (1,024, measured best at equal time); the baselines the paper's kind
    # of large batch, at which their rates were swept
    batch = DEFAULT_BATCH if model_name.startswith("neomlp") else BATCHES.get(model_name.split("-")[0], BATCH)
    config = FitConfig(lr=lr, warmup_steps=warmup, batch_size=batch, time_budget=budget, seed=args.seed,
                       device="cpu", precision=precision, compile=args.compile)
    result = fit(field, signal, config)
    t = time.perf_counter()
    quality = compare(signal.media, render_media(field, signal.layout()))
    render_s = time.perf_counter() - t
    gflops = train_flops * result.points_per_second / 1e9
    peak = args.peaks[precision]
    return {"signal": signal_name, "model": model_name, "preset": preset, "precision": precision, "params": field.num_parameters()["total"],
            "budget_s": budget, "batch": batch, "steps": result.steps, "epochs": result.steps * batch / signal.n_points,
            "fit_s": result.seconds, "video_psnr_db": quality.get("video_psnr_db"),
            "audio_psnr_db": quality.get("audio_psnr_db"), "train_points_per_s": result.points_per_second,
            "train_gflops": gflops, "peak_fraction": gflops / peak, "macs_per_sample": macs_per_point(field),
            "train_flops_per_point": train_flops, "render_s": render_s, "lr": lr, "warmup_steps": warmup}


def add_siren_deltas(rows: list[dict]) -> None:
    """PSNR of each row minus SIREN's on the same signal and budget (None when SIREN was not run)."""
    for row in rows:
        ref = next((r for r in rows if r["model"] == "siren" and r["signal"] == row["signal"]
                    and r["budget_s"] == row["budget_s"]), None)
        for key in ("video", "audio"):
            mine, theirs = row[f"{key}_psnr_db"], ref and ref[f"{key}_psnr_db"]
            row[f"{key}_vs_siren_db"] = mine - theirs if mine is not None and theirs is not None else None


# ------------------------------------------------------------------ output ----
def _f(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table(rows: list[dict]) -> str:
    lines = [("| signal | model | matmuls | params | budget s | batch | steps | epochs | PSNR video / audio dB | vs SIREN dB | "
              "train points/s | GFLOP/s | of peak | MACs/sample |"),
             "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for r in rows:
        psnr = " / ".join(_f(r[f"{k}_psnr_db"], ".2f") for k in ("video", "audio") if r[f"{k}_psnr_db"] is not None)
        delta = "ref" if r["model"] == "siren" else " / ".join(
            _f(r[f"{k}_vs_siren_db"], "+.2f") for k in ("video", "audio") if r[f"{k}_psnr_db"] is not None)
        model = f"{r['model']} ({r['preset']})" if r["preset"] else r["model"]
        lines.append(f"| {r['signal']} | {model} | {r['precision']} | {r['params']:,} | {r['budget_s']:g} | {r['batch']:,} | "
                     f"{r['steps']:,} | "
                     f"{r['epochs']:.2f} | {psnr} | {delta} | {r['train_points_per_s']:,.0f} | "
                     f"{r['train_gflops']:.1f} | {100 * r['peak_fraction']:.1f} % | {r['macs_per_sample']:,.0f} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signals", nargs="+", choices=list(SIGNALS), default=list(SIGNALS))
    ap.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    ap.add_argument("--budget", type=float, help="seconds of fitting for every run (overrides each signal's budgets)")
    ap.add_argument("--long", action="store_true", help="add the long budgets (bikes: 600 s)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", choices=PRECISIONS, help="matmul precision for every model (default: per model)")
    ap.add_argument("--compile", choices=COMPILE_MODES, default="auto",
                    help="torch.compile every fit's step: on, off, or auto (the codec's rule: 150 s or more left)")
    ap.add_argument("--data", type=Path, default=DATA, help=f"folder holding the clips (default {DATA})")
    ap.add_argument("--csv", type=Path, help="also write the rows here (rewritten after every run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.peaks = {"float32": matmul_peak(), "bfloat16": matmul_peak(dtype=torch.bfloat16)}
    args.peak = args.peaks["float32"]
    header = (f"torch {torch.__version__}, {args.threads} threads, seed {args.seed}; "
              f"{cpu_name()}; matmul peak (2048x2048 torch.mm): {args.peaks['float32']:.1f} GFLOP/s float32, "
              f"{args.peaks['bfloat16']:.1f} GFLOP/s bfloat16 ('of peak' is against the row's own precision)")
    log(header)

    rows: list[dict] = []
    for name in args.signals:
        clip = SIGNALS[name]
        signal = Signal(read_media(args.data / clip.file, clip.selection))
        budgets = (args.budget,) if args.budget else clip.budgets + (clip.long_budgets if args.long else ())
        default = f"neomlp-{default_preset(signal.kind)}"
        models = [m for m in args.models if not (m == default and "neomlp" in args.models)]  # the same model
        log(f"{name}: {clip.label}; {signal.n_points:,} points; models {', '.join(models)}")
        for budget in budgets:
            for model_name in models:
                row = run_one(name, signal, model_name, budget, args)
                rows.append(row)
                log(f"  {model_name} {budget:g} s: {row['steps']} steps, video {_f(row['video_psnr_db'], '.2f')} "
                    f"audio {_f(row['audio_psnr_db'], '.2f')} dB, {row['train_points_per_s']:,.0f} points/s "
                    f"(render {row['render_s']:.1f} s)")
                add_siren_deltas(rows)
                if args.csv:
                    write_csv(args.csv, rows)
    end_peak = matmul_peak()
    print(header + "\n")
    print(table(rows))
    print(f"\nmatmul peak at the end of the run: {end_peak:.1f} GFLOP/s ({end_peak / args.peak - 1:+.0%} against "
          "the start; a large change means something else used the CPU). FLOPs are matrix products only "
          "(FlopCounterMode); 'neomlp' is the codec's default preset for the kind "
          f"({', '.join(f'{k}: {default_preset(k)}' for k in ('video', 'audio', 'audiovisual'))}).")


if __name__ == "__main__":
    main()
