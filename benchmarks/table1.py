"""The NeoMLP paper's Table 1 on our machine: NeoMLP against SIREN, SPDER and an RFF-MLP at equal parameters.

    python benchmarks/table1.py [--mode time|steps] [--budget SECONDS] [--steps N]
                                [--signals bikes bach bbb] [--archs neomlp neomlp-linear neogrid grid siren spder rffnet peer]
                                [--csv FILE]

The paper's three signals (Bach, bikes, Big Buck Bunny with its 6-channel
sound as one field R^3 -> R^9 with the masked loss), cut to what a CPU fits
in minutes (``equal_time.SIGNALS``: 2 s of bikes at 320x136, the whole 7 s
of Bach, 1 s of Big Buck Bunny at 320x180). Every architecture has the
parameter count of the NeoMLP field the codec fits on that signal (its
per-frame latents included) and is fitted by neofield's own loop:

* ``--mode time`` (default): the same wall-clock budget for each (``--budget``,
  default 60 s), each at its own batch (NeoMLP 1,024, the MLPs 4,096);
* ``--mode steps``: the same number of steps at the same batch (1,024), the
  paper's protocol, which shows what each architecture does per step.

``neomlp-linear`` is the paper's ablation (a learned linear input layer
instead of random Fourier features). ``neogrid`` and ``grid`` are the latent-pyramid
fields (``encode --arch``: pyramids read by a one-layer NeoMLP, or by a 2 x 32 MLP),
at their own batch (4,096) and precision. ``peer`` is lucidrains' unofficial
``x_transformers.neo_mlp.NeoMLP`` (``pip install -e '.[peer]'``), at the size
of our NeoMLP with one latent set, which is also fitted (``neomlp-1set``) so
that the two compare at equal size and equal steps: points/s and PSNR side by
side. The table states the device, the clips and the budget. Run nothing
else meanwhile: it is timed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from equal_time import DATA, SIGNALS, cpu_name, matmul_peak  # noqa: E402

from neofield.codec import default_preset, make_field, sound_sigma  # noqa: E402
from neofield.fields.layouts import default_segments
from neofield.fields.baselines import SirenConfig  # noqa: E402
from neofield.codec.build import grid_field, neogrid_field  # noqa: E402
from neofield.fields.registry import AUTO_PRECISION, BATCHES, RATES, baseline_for  # noqa: E402
from neofield.fields.presets import PRESETS  # noqa: E402
from neofield.fit import DEFAULT_BATCH, FitConfig, fit  # noqa: E402
from neofield.media import read_media  # noqa: E402
from neofield.compare import compare  # noqa: E402
from neofield.render import render_media  # noqa: E402
from neofield.runtime import resolve_precision  # noqa: E402
from neofield.signal import Signal  # noqa: E402

ARCHS = ["neomlp", "neomlp-linear", "neogrid", "grid", "siren", "spder", "rffnet", "neomlp-1set", "peer"]
MLP_BATCH = 4096  # the MLPs' batch at equal time, at which their rates were swept (equal_time.py)
# The baselines' rates and sizes are the ones `neofield encode --arch` uses (neofield.fields.registry).


class Peer(nn.Module):
    """x-transformers' NeoMLP behind neofield's field convention (``forward(coords) -> values``)."""

    def __init__(self, in_features: int, out_features: int, dim: int, layers: int, hidden: int, heads: int):
        super().__init__()
        from x_transformers.neo_mlp import NeoMLP

        self.net = NeoMLP(dim_in=in_features, dim_hidden=hidden, dim_out=out_features, dim_model=dim, depth=layers,
                          encoder_kwargs=dict(attn_dim_head=dim // heads, heads=heads))
        self.config = SirenConfig(in_features, out_features)  # what fit and render read: in/out sizes

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.net(coords.float())

    def num_parameters(self) -> dict[str, int]:
        n = sum(p.numel() for p in self.parameters())
        return {"backbone": n, "latents": 0, "total": n}


def build(arch: str, signal: Signal, seed: int) -> tuple[nn.Module, float, int, str]:
    """The field, its rate and warm-up, and a label of its size."""
    preset = default_preset(signal.kind)
    p = PRESETS[preset]
    i, o = signal.coordinate_map.in_features, signal.out_features
    target = make_field(signal, preset, default_segments(signal), seed=seed).num_parameters()["total"]
    if arch in ("neomlp", "neomlp-linear", "neomlp-1set"):
        segments = 1 if arch == "neomlp-1set" else default_segments(signal)
        encoding = "linear" if arch == "neomlp-linear" else "rff"
        field = make_field(signal, preset, segments, seed=seed, encoding=encoding)
        c = field.config
        return field, p.lr, p.warmup_steps, f"{preset}, D {c.dim}, {segments} set{'s' if segments > 1 else ''}"
    if arch in ("neogrid", "grid"):  # latent pyramids, as `encode --arch` builds them, at the same count
        torch.manual_seed(seed)
        field = (neogrid_field if arch == "neogrid" else grid_field)(signal, target)
        levels = sum(p.levels for p in field.layout.pyramids) if arch == "neogrid" else field.config.levels
        return field, *RATES[arch], f"{levels} levels, {field.num_parameters()['latents']:,} latents"
    if arch in RATES:  # the parameter-matched baseline --arch builds, at its rate
        field = baseline_for(arch, i, o, target, signal.kind, seed, sound_sigma(signal))
        c = field.config
        size = f"{c.layers}x{c.width}" + (f", {c.rff_dim} features" if arch == "rffnet" else "")
        return field, *RATES[arch], size
    if arch == "peer":
        c = PRESETS[preset].model
        return Peer(i, o, c.dim, c.layers, c.hidden_tokens, c.heads), p.lr, p.warmup_steps, \
            f"x-transformers, D {c.dim}, {c.layers} layers"
    raise ValueError(arch)


def run(signal_name: str, signal: Signal, arch: str, args) -> dict:
    field, lr, warmup, size = build(arch, signal, args.seed)
    neo = arch.startswith("neomlp") or arch == "peer"
    batch = DEFAULT_BATCH if args.mode == "steps" or neo else BATCHES.get(arch, MLP_BATCH)
    # NeoMLP and the peer in the codec's precision, the sine networks in float32 (see equal_time.PRECISION)
    precision = resolve_precision(AUTO_PRECISION.get(arch, "auto") if neo or arch in ("rffnet", "grid", "neogrid")
                                  else "float32", torch.device("cpu"))
    config = FitConfig(lr=lr, warmup_steps=warmup, batch_size=batch, seed=args.seed, device="cpu",
                       precision=precision, compile="off",
                       **({"time_budget": args.budget} if args.mode == "time" else {"steps": args.steps}))
    result = fit(field, signal, config)
    quality = compare(signal.media, render_media(field, signal.layout()))
    return {"signal": signal_name, "arch": arch, "size": size, "params": field.num_parameters()["total"],
            "batch": batch, "precision": precision, "steps": result.steps, "seconds": result.seconds,
            "points_per_s": result.points_per_second, "video_psnr_db": quality.get("video_psnr_db"),
            "audio_psnr_db": quality.get("audio_psnr_db")}


def table(rows: list[dict]) -> str:
    lines = ["| signal | architecture | size | params | batch | steps | s | points/s | PSNR video / audio dB |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        psnr = " / ".join(f"{r[k]:.2f}" for k in ("video_psnr_db", "audio_psnr_db") if r[k] is not None)
        lines.append(f"| {r['signal']} | {r['arch']} | {r['size']} | {r['params']:,} | {r['batch']:,} | "
                     f"{r['steps']:,} | {r['seconds']:.0f} | {r['points_per_s']:,.0f} | {psnr} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["time", "steps"], default="time")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds per fit with --mode time")
    ap.add_argument("--steps", type=int, default=2000, help="steps per fit with --mode steps")
    ap.add_argument("--signals", nargs="+", choices=list(SIGNALS), default=list(SIGNALS))
    ap.add_argument("--archs", nargs="+", choices=ARCHS, default=ARCHS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    archs = list(args.archs)
    if "peer" in archs:
        try:
            import x_transformers  # noqa: F401
        except ImportError:
            print("x-transformers is not installed (pip install -e '.[peer]'): leaving out the peer", file=sys.stderr)
            archs.remove("peer")
    budget = f"{args.budget:g} s per fit" if args.mode == "time" else f"{args.steps:,} steps of {DEFAULT_BATCH:,}"
    header = (f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, no GPU; "
              f"{budget}; matmul peak {matmul_peak():.0f} GFLOP/s float32; seed {args.seed}")
    print(header, file=sys.stderr)
    rows = []
    for name in args.signals:
        clip = SIGNALS[name]
        signal = Signal(read_media(args.data / clip.file, clip.selection))
        print(f"{name}: {clip.label}", file=sys.stderr)
        for arch in archs:
            t = time.perf_counter()
            rows.append(run(name, signal, arch, args))
            r = rows[-1]
            print(f"  {arch}: {r['video_psnr_db'] or ''} {r['audio_psnr_db'] or ''} dB, {r['steps']} steps, "
                  f"{r['points_per_s']:,.0f} points/s ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
            if args.csv:
                with open(args.csv, "w", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
    print(header + "\n\n" + "\n".join(f"* {n}: {SIGNALS[n].label}" for n in args.signals) + "\n")
    print(table(rows))
    peer = {r["signal"]: r for r in rows if r["arch"] == "peer"}
    ours = {r["signal"]: r for r in rows if r["arch"] == "neomlp-1set"}
    for name in peer.keys() & ours.keys():
        a, b = ours[name], peer[name]
        key = "video_psnr_db" if a["video_psnr_db"] is not None else "audio_psnr_db"
        print(f"\n{name}: our NeoMLP (1 set) against x-transformers' at {a['params']:,} / {b['params']:,} "
              f"parameters: {a['points_per_s'] / b['points_per_s']:.2f}x the points/s, "
              f"{a[key] - b[key]:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
