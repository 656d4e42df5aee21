"""What uniform quantization of a bundle's tensors costs in PSNR and saves in bytes.

    .venv/bin/python benchmarks/quantize.py ORIGINAL BUNDLE.nf

Quantizes every tensor of the bundle's field (backbone and latents apart, per
tensor or per output channel) with no finetuning, renders the field on its
own grid, and prints PSNR against the original next to the bytes the symbols
take: their empirical entropy (an ideal per-tensor coder, tables not
counted), what neofield's range coder (``neofield/entropy.py``, a Gaussian
per tensor) writes, and zstd-19 of the packed symbols, each plus 8 bytes per
scale/offset pair. The reference in the same run is the bundle as it is. It
is the measurement issue 10's bit depths, coder and finetuning started from.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import neofield  # noqa: E402
from neofield.media import Selection, read_media  # noqa: E402
from neofield.compare import compare  # noqa: E402
from neofield.streams import coded_bytes as range_coded_bytes  # noqa: E402
from neofield.quantize import QuantizedTensor, entropy_bytes, quantize  # noqa: E402
from neofield.render import render_media  # noqa: E402

# (backbone bits, latent bits, per channel)
CONFIGS = [(8, 8, False), (8, 8, True), (7, 7, True), (6, 6, False), (6, 6, True), (5, 5, True), (4, 4, True),
           (8, 6, True), (8, 4, True), (6, 8, True), (4, 8, True)]


def quantize_state(state: dict[str, torch.Tensor], backbone_bits: int, latent_bits: int,
                   per_channel: bool) -> dict[str, QuantizedTensor]:
    out = {}
    for name, t in state.items():
        bits = latent_bits if name.startswith("latents.") else backbone_bits
        axis = 0 if per_channel and t.ndim >= 2 else None
        out[name] = quantize(t.float().numpy(), bits, axis)
    return out


def coded_bytes(q: dict[str, QuantizedTensor]) -> dict[str, float]:
    """Entropy and zstd bytes of the symbols, split into backbone and latents, with the scale/offset pairs."""
    sizes = {"entropy_backbone": 0.0, "entropy_latents": 0.0, "zstd": 0.0, "side": 0.0,
             "range": float(sum(range_coded_bytes(q).values()))}
    packed = []
    for name, qt in q.items():
        part = "entropy_latents" if name.startswith("latents.") else "entropy_backbone"
        sizes[part] += entropy_bytes(qt.symbols)
        sizes["side"] += 8 * qt.scale.size
        packed.append(qt.symbols.astype(np.uint8 if qt.bits <= 8 else np.uint16).tobytes())
    sizes["zstd"] = len(zstandard.ZstdCompressor(level=19).compress(b"".join(packed)))
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("original", type=Path)
    parser.add_argument("bundle", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    bundle = neofield.load(args.bundle)
    media = read_media(args.original, Selection.from_dict(bundle.meta["source"]["selection"]))
    key = "video_psnr_db" if media.video is not None else "audio_psnr_db"
    reference = compare(media, render_media(bundle.field, bundle.meta))[key]
    size = args.bundle.stat().st_size
    state = bundle.field.state_dict()
    print(f"{args.bundle}: {size:,} bytes, {key} {reference:.2f} dB "
          f"({sum(t.numel() for t in state.values()):,} parameters, float16 under zstd)\n")
    print("| backbone bits | latent bits | scales | PSNR (dB) | ΔPSNR | entropy bytes: backbone + latents + scales "
          "| range coded + scales | zstd bytes + scales | entropy vs bundle |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backbone_bits, latent_bits, per_channel in CONFIGS:
        q = quantize_state(state, backbone_bits, latent_bits, per_channel)
        field = copy.deepcopy(bundle.field)
        field.load_state_dict({k: torch.from_numpy(v.dequantize()) for k, v in q.items()})
        psnr = compare(media, render_media(field, bundle.meta))[key]
        s = coded_bytes(q)
        entropy = s["entropy_backbone"] + s["entropy_latents"] + s["side"]
        print(f"| {backbone_bits} | {latent_bits} | {'per channel' if per_channel else 'per tensor'} | {psnr:.2f} | "
              f"{psnr - reference:+.2f} | {entropy:,.0f} = {s['entropy_backbone']:,.0f} + {s['entropy_latents']:,.0f}"
              f" + {s['side']:,.0f} | {s['range'] + s['side']:,.0f} ({s['range'] / (entropy - s['side']) - 1:+.1%}) | "
              f"{s['zstd'] + s['side']:,.0f} ({s['zstd'] / (entropy - s['side']) - 1:+.1%}) | "
              f"{size / entropy:.2f}x smaller |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
