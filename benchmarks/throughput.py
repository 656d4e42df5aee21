"""Training and decoding speed of NeoMLP presets, against a SIREN measured in the same run.

    python benchmarks/throughput.py [--presets tiny small audio] [--seconds 5]

Prints points/s for a training step (forward + backward + Adam, batch 4,096)
and for decoding (forward only, float32, through neofield's chunked ``evaluate``), and each preset's
ratio to a parameter-matched-ish SIREN (5 x 256, ~198 k parameters) on the same machine and threads.
NeoMLP trains in the codec's precision (``--precision auto``: bfloat16 where the CPU has it).
Coordinates are uniform in [-1, 1] on fresh weights, which misses the subnormal slowdown of a fitted
field that ``neofield.runtime.flush_denormals`` removes. Wall-clock; run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from neofield.fields.baselines import Siren, SirenConfig
from neofield.fields.neomlp import NeoMLPField, Segmentation, build_config
from neofield.render import evaluate
from neofield.runtime import autocast, flush_denormals, resolve_precision


def points_per_second(model: nn.Module, inputs: int, outputs: int, train: bool, seconds: float,
                      precision: str = "float32") -> float:
    batch = 4096 if train else 65536
    x = torch.rand(batch, inputs) * 2 - 1
    y = torch.rand(batch, outputs)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    steps, start = 0, None
    while True:
        if train:
            with flush_denormals():  # as neofield.fit runs a step
                with autocast(torch.device("cpu"), precision):
                    loss = ((model(x).float() - y) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        else:
            evaluate(model, x)  # the decoder's own chunking
        steps += 1
        if steps == 2:
            start = time.perf_counter()  # two warm-up steps
        if start and time.perf_counter() - start > seconds:
            return (steps - 2) * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "audio"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--precision", default="auto", help="NeoMLP's training matmuls (neofield.runtime): auto, "
                                                        "float32 or bfloat16; decoding is always float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision, torch.device("cpu"))
    rows = []
    for inputs, outputs, label in [(3, 3, "video (x,y,t -> RGB)"), (1, 1, "audio (t -> mono)")]:
        siren = Siren(SirenConfig(inputs, outputs))
        ref_train = points_per_second(siren, inputs, outputs, True, args.seconds)  # float32: see equal_time.py
        ref_eval = points_per_second(siren, inputs, outputs, False, args.seconds)
        n_siren = sum(p.numel() for p in siren.parameters())
        rows.append((label, "SIREN 5x256 (reference)", n_siren, ref_train, ref_eval, 1.0, 1.0))
        for preset in args.presets:
            field = NeoMLPField(build_config(preset, inputs, outputs), Segmentation(16, -1, 1))
            train = points_per_second(field, inputs, outputs, True, args.seconds, precision)
            decode = points_per_second(field.eval(), inputs, outputs, False, args.seconds)
            rows.append((label, f"NeoMLP {preset}", field.num_parameters()["total"], train, decode,
                         train / ref_train, decode / ref_eval))
    print(f"torch {torch.__version__}, {args.threads} threads, NeoMLP trains in {precision} (SIREN float32), "
          "batch 4,096 (train); "
          "decode 65,536 points per call\n")
    print("| signal | model | params | train points/s | decode points/s | decode / train | train vs SIREN | decode vs SIREN |")
    print("|---|---|---|---|---|---|---|---|")
    for label, name, n, tr, de, rt, rd in rows:
        print(f"| {label} | {name} | {n:,} | {tr:,.0f} | {de:,.0f} | {de / tr:.1f}x | {rt:.2f}x | {rd:.2f}x |")


if __name__ == "__main__":
    main()
