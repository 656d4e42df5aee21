"""The latents' entropy model against the coder before it, on the same symbols: bytes, and time to decode.

    .venv/bin/python benchmarks/entropy_models.py BUNDLE.nf [BUNDLE.nf ...]

For each bundle fitted with a rate term (a ``neogrid`` field whose latents are stored at a step), the
latent symbols the bundle holds are range coded three times with ``neofield/entropy.py``:

* **one Gaussian per tensor**: the coder of format v3, before issue 24 (the reference);
* **a Laplace per block** (a pyramid level and channel, integer tables): what format v4 writes;
* **as a checkerboard** where it pays (a block's second half under models its decoded neighbours choose): v5;
* **predicted** where it pays more (plane by plane, each node from the median of its earlier neighbours): v6;
* **learned** where it pays more still (plane by plane under a context trained on these symbols, its 482
  weights counted at ``streams.CONTEXT_SIDE_BYTES``): v7. Its training is timed too (an encoder's cost).

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

from neofield import bundle as bundle_io, entropy, learned_context, streams  # noqa: E402
from neofield.quantize import BitDepths  # noqa: E402
from neofield.render import render_media  # noqa: E402

REPEATS = 5
CONTEXTS = {"checkerboard": (entropy.WHOLE, entropy.CHECKERBOARD),
            "predicted": (entropy.WHOLE, entropy.CHECKERBOARD, entropy.WAVEFRONT), "learned": entropy.CODINGS}
"""The coders in context: format v5's (a block whole or as a checkerboard), v6's (or plane by plane, each node
from its prediction) and v7's (or plane by plane under a learned context)."""


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
    t0 = time.perf_counter()
    weights = learned_context.train([(part, shape) for part, shape in zip(blocks, q.block_shapes, strict=True)
                                     if learned_context.allowed(shape, q.levels)], q.levels)
    out["train_seconds"] = time.perf_counter() - t0
    context = learned_context.unpack(weights)
    for name, codings in CONTEXTS.items():
        fitted = [entropy.fit_block(part, shape, q.levels, codings, context if name == "learned" else None)
                  for part, shape in zip(blocks, q.block_shapes, strict=True)]
        stream = entropy.encode([r for _, _, runs in fitted for r, _ in runs],
                                [m for _, _, runs in fitted for _, m in runs])

        def read(fitted=fitted, stream=stream) -> list[np.ndarray]:
            reader = entropy.Reader(stream)
            return [entropy.read_block(reader, coding, ms, shape, q.levels, context)
                    for (coding, ms, _), shape in zip(fitted, q.block_shapes)]

        seconds, decoded = best_of(read)
        assert all(np.array_equal(d, s.ravel()) for d, s in zip(decoded, blocks, strict=True)), name
        stored = sum(len(ms) for _, ms, _ in fitted)
        side = streams.CONTEXT_SIDE_BYTES if entropy.LEARNED in [c for c, _, _ in fitted] else 0
        out[name] = {"bytes": len(stream) + 8 * stored + 4 * len(blocks) + side, "seconds": seconds,
                     "codings": [c for c, _, _ in fitted]}
    field = loaded.field.eval()
    out["render_seconds"], _ = best_of(lambda: render_media(field, loaded.meta), repeats=1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE")
    args = ap.parse_args(argv)
    print("| bundle | latents | Gaussian per tensor: bytes (bits/latent) | Laplace per block (v4) | checkerboard "
          "(v5) | predicted (v6; blocks whole / checkerboard / predicted) | learned (v7; + learned) | v7 against v6 "
          "| decode ms, Gaussian / Laplace / v5 / v6 / v7 | training, s | render of the whole signal, s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.bundles:
        r = measure(path)
        g, lp, cb, pr, le = (r[k] for k in ("gaussian per tensor", "laplace per block", "checkerboard", "predicted",
                                            "learned"))
        n = r["latents"]

        def cell(x: dict, kinds: tuple[int, ...] = ()) -> str:
            counts = "; " + " / ".join(str(x["codings"].count(c)) for c in kinds) if kinds else ""
            return f"{x['bytes']:,} ({8 * x['bytes'] / n:.3f}{counts})"

        decode = " / ".join(f"{1e3 * x['seconds']:.1f}" for x in (g, lp, cb, pr, le))
        print(f"| {r['bundle']} | {n:,} | {cell(g)} | {cell(lp)} | {cell(cb)} | {cell(pr, CONTEXTS['predicted'])} | "
              f"{cell(le, entropy.CODINGS)} | {le['bytes'] / pr['bytes'] - 1:+.1%} | {decode} | "
              f"{r['train_seconds']:.1f} | {r['render_seconds']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
