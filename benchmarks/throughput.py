"""Training and decoding speed of NeoMLP presets, against a SIREN measured in the same run.

    python benchmarks/throughput.py [--presets tiny small audio] [--seconds 5] [--compile]

Prints points/s for a training step (forward + backward + Adam, batch 4,096)
and for decoding (forward only, float32, through neofield's chunked ``Evaluator``), and each preset's
ratio to a parameter-matched-ish SIREN (5 x 256, ~198 k parameters) on the same machine and threads.
``--compile`` adds each preset again with ``torch.compile`` (what long fits and long decodes use),
timed after compiling, and every row's training matmul GFLOP/s as a share of the float32 and bfloat16
``torch.mm`` peaks measured in the same run.
NeoMLP trains in the codec's precision (``--precision auto``: bfloat16 where the CPU has it).
Coordinates are uniform in [-1, 1] on fresh weights, which misses the subnormal slowdown of a fitted
field that ``neofield.runtime.flush_denormals`` removes. Wall-clock; run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

from neofield.fields.baselines import Siren, SirenConfig
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config
from torch.utils.flop_counter import FlopCounterMode

from neofield.render import Evaluator
from neofield.runtime import autocast, flush_denormals, resolve_precision
from neofield.runtime import compiled as compile_field  # as the fit compiles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from equal_time import matmul_peak  # noqa: E402


def points_per_second(model: nn.Module, inputs: int, outputs: int, train: bool, seconds: float,
                      precision: str = "float32", compiled: bool = False) -> float:
    batch = 4096 if train else 65536
    x = torch.rand(batch, inputs) * 2 - 1
    y = torch.rand(batch, outputs)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    forward = compile_field(model) if compiled and train else model
    decoder = Evaluator(model, compiled=compiled)
    steps, start = 0, None
    while True:
        if train:
            with flush_denormals():  # as neofield.fit runs a step
                with autocast(torch.device("cpu"), precision):
                    loss = ((forward(x).float() - y) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        else:
            decoder(x)  # the decoder's own chunking
        steps += 1
        if steps == 2:
            start = time.perf_counter()  # two warm-up steps (compiling happens in the first)
        if start and time.perf_counter() - start > seconds:
            return (steps - 2) * batch / (time.perf_counter() - start)


def train_flops_per_point(model: nn.Module, inputs: int, outputs: int) -> float:
    """Matmul FLOPs of one training step's forward + backward, per point."""
    x, y = torch.rand(1024, inputs) * 2 - 1, torch.rand(1024, outputs)
    with FlopCounterMode(display=False) as counter:
        ((model(x).float() - y) ** 2).mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "audio"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precision", default="auto", help="NeoMLP's training matmuls (neofield.runtime): auto, "
                                                        "float32 or bfloat16; decoding is always float32")
    ap.add_argument("--compile", action="store_true", help="also time each preset compiled (torch.compile)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    peaks = {"float32": matmul_peak(), "bfloat16": matmul_peak(dtype=torch.bfloat16)}
    rows = []
    for inputs, outputs, label in [(3, 3, "video (x,y,t -> RGB)"), (1, 1, "audio (t -> mono)")]:
        siren = Siren(SirenConfig(inputs, outputs))
        ref_train = points_per_second(siren, inputs, outputs, True, args.seconds)  # float32: see equal_time.py
        ref_eval = points_per_second(siren, inputs, outputs, False, args.seconds)
        n_siren = sum(p.numel() for p in siren.parameters())
        rows.append((label, "SIREN 5x256 (reference)", n_siren, ref_train, ref_eval, 1.0, 1.0,
                     ref_train * train_flops_per_point(siren, inputs, outputs) / 1e9, "float32"))
        for preset in args.presets:
            for compiled in (False, True) if args.compile else (False,):
                field = NeoMLPField(build_config(preset, inputs, outputs), TimeSegments(16, -1, 1))
                flops = train_flops_per_point(field, inputs, outputs)
                train = points_per_second(field, inputs, outputs, True, args.seconds, precision, compiled)
                decode = points_per_second(field.eval(), inputs, outputs, False, args.seconds, compiled=compiled)
                rows.append((label, f"NeoMLP {preset}" + (" compiled" if compiled else ""),
                             field.num_parameters()["total"], train, decode, train / ref_train, decode / ref_eval,
                             train * flops / 1e9, precision))
    print(f"torch {torch.__version__}, {args.threads} threads, NeoMLP trains in {precision} (SIREN float32), "
          "batch 4,096 (train); decode 65,536 points per call; matmul peaks (2048x2048 torch.mm): "
          f"{peaks['float32']:.0f} GFLOP/s float32, {peaks['bfloat16']:.0f} bfloat16\n")
    print("| signal | model | params | train points/s | decode points/s | decode / train | train vs SIREN | "
          "decode vs SIREN | train GFLOP/s | of float32 peak | of own precision's peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, name, n, tr, de, rt, rd, gf, prec in rows:
        print(f"| {label} | {name} | {n:,} | {tr:,.0f} | {de:,.0f} | {de / tr:.1f}x | {rt:.2f}x | {rd:.2f}x | "
              f"{gf:.0f} | {gf / peaks['float32']:.0%} | {gf / peaks[prec]:.0%} |")


if __name__ == "__main__":
    main()
