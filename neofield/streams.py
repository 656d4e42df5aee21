"""A bundle's coded streams: each group of tensors (the backbone, the latents) range coded into one stream,
each tensor whole under a Gaussian or block by block, each block the cheapest of the codings
:mod:`neofield.entropy` knows, under the group's learned context where one pays
(:mod:`neofield.learned_context`). What :mod:`neofield.bundle` stores, and what rate control measures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import entropy, learned_context
from .quantize import QuantizedTensor

GROUPS = ("backbone", "latents")  # each group of tensors is one coded stream, so its bytes are known exactly


def group_of(name: str) -> str:
    return "latents" if name.startswith("latents.") else "backbone"


def group_names(names, group: str) -> list[str]:
    """A group's tensor names in coding order (sorted): the one order writer and reader share."""
    return sorted(n for n in names if group_of(n) == group)


@dataclass(frozen=True)
class CodedGroup:
    """One group's tensors range coded into one stream: a Gaussian per whole tensor (None for a tensor coded
    in blocks), the Laplace models of its blocks in coding order, and how each block is coded
    (:data:`entropy.CODINGS`: whole, as a checkerboard or plane by plane; :data:`entropy.MODELS` says how many
    models each has)."""

    names: list[str]
    stream: bytes
    gaussians: list[entropy.GaussianModel | None]
    blocks: list[entropy.LaplaceModel]
    contexts: list[int]
    context: np.ndarray | None = None  # the learned context's int16 weights, where a block is coded under it


def _block_symbols(q: QuantizedTensor) -> list[np.ndarray]:
    flat = q.symbols.reshape(q.symbols.shape[0], -1)
    return [flat[a:b, c] for a, b, c in q.blocks]


def code_groups(quantized: dict[str, QuantizedTensor], contexts: dict[str, np.ndarray | None] | None = None
                ) -> dict[str, CodedGroup]:
    """Each group's tensors, in coding order (each tensor whole, or block by block), range coded into one
    stream, under the group's learned context where its stream and weights come out smaller. ``contexts``: the
    contexts to try, per group (None: learned where the stream is long enough to pay, :func:`learned_contexts`)."""
    out = {}
    for group in GROUPS:
        plain, under = _both_ways(quantized, group, contexts)
        out[group] = under if under is not None and _cost(under) < _cost(plain) else plain
    return out


def codings(quantized: dict[str, QuantizedTensor]) -> list[dict[str, CodedGroup]]:
    """The ways a bundle may code its groups: each without a learned context, then, where a group's stream is
    long enough for one to pay and a block takes it, the same with that group under the context learned for it.
    Each group's blocks are fitted once, for both."""
    ways = {group: _both_ways(quantized, group, None) for group in GROUPS}
    plain = {group: coded for group, (coded, _) in ways.items()}
    learned = {group: under for group, (_, under) in ways.items() if under is not None}
    return [plain] + ([{**plain, **learned}] if learned else [])


def _both_ways(quantized: dict[str, QuantizedTensor], group: str, contexts: dict[str, np.ndarray | None] | None
               ) -> tuple[CodedGroup, CodedGroup | None]:
    """A group coded without a learned context, and under its context in ``contexts`` (None: the one learned
    where its stream is long enough) where a block takes it (else None); its blocks fitted once, for both."""
    names = group_names(quantized, group)
    fitted = _fitted(quantized, names)
    plain = _code_group(quantized, names, fitted, None)
    context = contexts.get(group) if contexts is not None else _learned_context(quantized, names, plain)
    under = _code_group(quantized, names, fitted, context) if context is not None else None
    return plain, under if under is not None and under.context is not None else None


def learned_contexts(quantized: dict[str, QuantizedTensor]) -> dict[str, np.ndarray | None]:
    """Per group, a learned context trained on its grids (:mod:`neofield.learned_context`), or None where the
    group's stream without one is too short for its weights to pay or its grids differ in levels."""
    return {group: _learned_context(quantized, names, _code_group(quantized, names, _fitted(quantized, names), None))
            for group, names in ((g, group_names(quantized, g)) for g in GROUPS)}


def _learned_context(quantized: dict[str, QuantizedTensor], names: list[str], plain: CodedGroup
                     ) -> np.ndarray | None:
    if len(plain.stream) < learned_context.MIN_STREAM_BYTES:
        return None
    grids = [(part, shape, q.levels) for q in (quantized[n] for n in names) if q.blocks and q.block_shapes
             for part, shape in zip(_block_symbols(q), q.block_shapes, strict=True)
             if learned_context.allowed(shape, q.levels)]
    if not grids or len({lv for *_, lv in grids}) != 1:
        return None
    return learned_context.train([(part, shape) for part, shape, _ in grids], grids[0][2])


# what a learned context's 482 int16 weights add to a bundle under zstd, and a stored Laplace model (two int32)
CONTEXT_SIDE_BYTES, MODEL_BYTES = 800, 5


def _cost(coded: CodedGroup) -> int:
    """About what a group adds to a bundle: its stream, its blocks' models and its learned context."""
    return len(coded.stream) + MODEL_BYTES * len(coded.blocks) + CONTEXT_SIDE_BYTES * (coded.context is not None)


def _blocks(q: QuantizedTensor) -> list[tuple[np.ndarray, tuple[int, ...] | None]]:
    """A blocked tensor's blocks: each one's symbols and grid (None where its grid is unknown: coded whole)."""
    return list(zip(_block_symbols(q), q.block_shapes or [None] * len(q.blocks), strict=True))


def _fitted(quantized: dict[str, QuantizedTensor], names: list[str]) -> dict[str, list[entropy.BlockCode]]:
    """Each blocked tensor's blocks coded the cheapest way without a learned context: fitted once, for the
    group coded with a context and without."""
    return {n: [entropy.best_block(part, shape, quantized[n].levels) for part, shape in _blocks(quantized[n])]
            for n in names if quantized[n].blocks}


def _code_group(quantized: dict[str, QuantizedTensor], names: list[str], fitted: dict[str, list[entropy.BlockCode]],
                context: np.ndarray | None) -> CodedGroup:
    """The group coded, each block as ``fitted`` or under ``context`` where that takes fewer bits."""
    layers = learned_context.unpack(context) if context is not None else None
    symbols, models, gaussians, blocks, contexts = [], [], [], [], []
    for n in names:
        q = quantized[n]
        if q.blocks:
            for (part, shape), best in zip(_blocks(q), fitted[n], strict=True):
                learned = entropy.learned_block(part, shape, q.levels, layers)
                if learned is not None and learned.bits < best.bits:
                    best = learned
                symbols += [run for run, _ in best.runs]
                models += [model for _, model in best.runs]
                blocks += best.models
                contexts.append(best.coding)
            gaussians.append(None)
        else:
            gaussian = entropy.GaussianModel.fit(q.symbols, q.levels)
            symbols.append(q.symbols)
            models.append(gaussian)
            gaussians.append(gaussian)
    return CodedGroup(names, entropy.encode(symbols, models), gaussians, blocks, contexts,
                      context if entropy.LEARNED in contexts else None)


def coded_bytes(quantized: dict[str, QuantizedTensor], contexts: dict[str, np.ndarray | None] | None = None
                ) -> dict[str, int]:
    """The bytes each group's stream takes, with its learned context's weights: what rate control steers."""
    return {group: len(coded.stream) + (CONTEXT_SIDE_BYTES if coded.context is not None else 0)
            for group, coded in code_groups(quantized, contexts).items()}
