"""The latents' entropy model against the coder before it, on the same symbols: bytes, and time to decode.

    .venv/bin/python benchmarks/entropy_models.py BUNDLE.nf [BUNDLE.nf ...]

For each bundle fitted with a rate term (a ``neogrid`` field whose latents are stored at a step), the
latent symbols the bundle holds are range coded three times with ``neofield/entropy.py``:

* **one Gaussian per tensor**: the coder of format v3, before issue 24 (the reference);
* **a Laplace per block** (a pyramid level and channel, integer tables): what format v4 writes;
* **as a checkerboard** where it pays (a block's second half under models its decoded neighbours choose): v5;
* **predicted** where it pays more (plane by plane, each node from the median of its earlier neighbours): v6.

Every stream is decoded again (checked against the symbols) and timed, best of five; the table gives
the bytes (a stream's models counted at 8 bytes each, as the bundle stores them before zstd), the bits per
latent, the ratios to the reference, and the decode times beside the time the field
takes to render its whole signal once (``render_media``, eager), so the entropy decoder's share of a
decode is in view. The same symbols go into both coders, so the quality is the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neofield import bundle as bundle_io, entropy  # noqa: E402
from neofield.quantize import BitDepths  # noqa: E402
from neofield.render import render_media  # noqa: E402

REPEATS = 5
CONTEXTS = {"checkerboard": (entropy.WHOLE, entropy.CHECKERBOARD), "predicted": entropy.CODINGS}
"""The coders in context: format v5's (a block whole or as a checkerboard) and v6's (or plane by plane,
each node from its prediction)."""


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    """The fastest of ``repeats`` runs, in seconds, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    return min(times), out


def latent_symbols(path: Path):
    """The bundle's field, its latent tensor's symbols as the bundle holds them, and their blocks."""
    loaded = bundle_io.load(path)
    step = loaded.meta.get("quantization", {}).get("latent_step")
    if step is None:
        raise SystemExit(f"{path}: no latent step (a bundle fitted with --lambda or a size target on neogrid)")
    q = bundle_io.quantize_state(loaded.field, BitDepths(), step)["latents.table"]
    return loaded, q


def measure(path: Path) -> dict:
    loaded, q = latent_symbols(path)
    flat = q.symbols.reshape(q.symbols.shape[0], -1)
    blocks = [flat[a:b, c] for a, b, c in q.blocks]
    coders = {
        "gaussian per tensor": ([q.symbols], [entropy.GaussianModel.fit(q.symbols, q.levels)]),
        "laplace per block": (blocks, [entropy.LaplaceModel.fit(part, q.levels) for part in blocks]),
    }
    out = {"bundle": str(path), "latents": int(q.symbols.size), "levels": q.levels}
    for name, (symbols, models) in coders.items():
        stream = entropy.encode(symbols, models)
        seconds, decoded = best_of(lambda: entropy.decode(stream, models, [s.size for s in symbols]))
        assert all(np.array_equal(d, s.ravel()) for d, s in zip(decoded, symbols, strict=True)), name
        side = 8 * len(models) if name != "gaussian per tensor" else 8
        out[name] = {"bytes": len(stream) + side, "seconds": seconds}
    for name, codings in CONTEXTS.items():
        fitted = [entropy.fit_block(part, shape, q.levels, codings)
                  for part, shape in zip(blocks, q.block_shapes, strict=True)]
        stream = entropy.encode([r for _, _, runs in fitted for r, _ in runs],
                                [m for _, _, runs in fitted for _, m in runs])

        def read(fitted=fitted, stream=stream) -> list[np.ndarray]:
            reader = entropy.Reader(stream)
            return [entropy.read_block(reader, coding, ms, shape)
                    for (coding, ms, _), shape in zip(fitted, q.block_shapes)]

        seconds, decoded = best_of(read)
        assert all(np.array_equal(d, s.ravel()) for d, s in zip(decoded, blocks, strict=True)), name
        stored = sum(len(ms) for _, ms, _ in fitted)
        out[name] = {"bytes": len(stream) + 8 * stored + 4 * len(blocks), "seconds": seconds,
                     "codings": [c for c, _, _ in fitted]}
    field = loaded.field.eval()
    out["render_seconds"], _ = best_of(lambda: render_media(field, loaded.meta), repeats=1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    args = ap.parse_args(argv)
    print("| bundle | latents | Gaussian per tensor: bytes (bits/latent) | Laplace per block (v4) | checkerboard "
          "(v5) | predicted (v6; blocks whole / checkerboard / predicted) | v6 against v5 | decode ms, Gaussian / "
          "Laplace / v5 / v6 | render of the whole signal, s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.bundles:
        r = measure(path)
        g, lp, cb, pr = r["gaussian per tensor"], r["laplace per block"], r["checkerboard"], r["predicted"]
        n = r["latents"]
        kinds = " / ".join(str(pr["codings"].count(c)) for c in entropy.CODINGS)
        print(f"| {r['bundle']} | {n:,} | {g['bytes']:,} ({8 * g['bytes'] / n:.3f}) | {lp['bytes']:,} "
              f"({8 * lp['bytes'] / n:.3f}) | {cb['bytes']:,} ({8 * cb['bytes'] / n:.3f}) | {pr['bytes']:,} "
              f"({8 * pr['bytes'] / n:.3f}; {kinds}) | {pr['bytes'] / cb['bytes'] - 1:+.1%} | "
              f"{1e3 * g['seconds']:.1f} / {1e3 * lp['seconds']:.1f} / {1e3 * cb['seconds']:.1f} / "
              f"{1e3 * pr['seconds']:.1f} | {r['render_seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
