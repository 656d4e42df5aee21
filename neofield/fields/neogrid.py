"""NeoGrid: NeoMLP whose hidden tokens are latents laid over the signal, cheap enough to run per pixel.

The paper's NeoMLP gives each coordinate input tokens (Fourier features), hidden and output tokens
(latents), and mixes them with layers of attention: ~177 k multiply-adds a pixel on our CPU preset. Here
the detail lives in a :class:`~.pyramid.PyramidLayout`: latent grids over space and time at several
resolutions, read at each coordinate (a few multiply-adds per value). One linear map turns what the
levels read into ``hidden_tokens`` hidden tokens of width ``dim`` - the pyramid is a learned, local
positional encoding in place of Fourier features - and one NeoMLP layer of attention, queried by the
output tokens alone (the last layer needs nothing else), mixes them with the output tokens; each output
token is read out to one scalar. ~1 k multiply-adds a pixel (:mod:`.cost`), ~0.7 k a sample of sound.

At equal steps on 2 s of bikes it fits better than the same pyramid read by a 2 x 32 MLP; at equal time
it is level with it or behind, since its many small operations make a step ~2x as long on a CPU
(``benchmarks/prototypes.py``, ``benchmarks/equal_time.py``; ``docs/field-designs.md``).

Output tokens are learned embeddings shared by every coordinate; all that is local is in the pyramid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .gridmlp import GridConfig, grid_config_for
from .layouts import Latents
from .neomlp import Block
from .pyramid import Pyramid, PyramidLayout


@dataclass(frozen=True)
class NeoGridConfig:
    """The NeoMLP of a NeoGrid field; the layout (its pyramids, their channels) is stored beside it."""

    in_features: int
    out_features: int
    tokens: int  # levels the layout reads: the hidden tokens' inputs
    channels: int  # values per level read
    dim: int = 8
    hidden_tokens: int = 2
    # 0: no FFN, the layer is attention alone. Measured at equal time (60 s, ~37 k parameters): as good on
    # bikes (29.10 against 29.13 dB with an FFN of 16) and +2.6 dB on Bach (57.60 against 54.97), its steps 1.1-1.2x
    # as fast (docs/field-designs.md)
    ffn_dim: int = 0
    heads: int = 1
    attention: str = "linear"

    def to_dict(self) -> dict:
        return asdict(self)


class LeanNeoMLP(nn.Module):
    """Levels read ``(B, tokens, channels)`` -> outputs ``(B, O)``: hidden tokens from one linear map, one
    pre-norm layer of attention + FFN computed for the output tokens only, one scalar per output token."""

    def __init__(self, c: NeoGridConfig):
        super().__init__()
        self.config = c
        self.to_hidden = nn.Linear(c.tokens * c.channels, c.hidden_tokens * c.dim)
        self.output_embed = nn.Parameter(torch.randn(c.out_features, c.dim) * 0.03)
        self.block = Block(c.dim, max(c.ffn_dim, 1), c.heads, c.attention)
        if not c.ffn_dim:
            del self.block.ffn, self.block.norm2  # no FFN: the layer is attention alone
        self.norm = nn.LayerNorm(c.dim, elementwise_affine=False)
        self.readout = nn.Linear(c.dim, 1)

    def forward(self, levels: torch.Tensor) -> torch.Tensor:
        b, c = len(levels), self.config
        hidden = self.to_hidden(levels.flatten(1)).view(b, c.hidden_tokens, c.dim)
        if c.heads == 1 and c.attention == "linear":
            return self.fast(hidden)
        tokens = torch.cat([hidden, self.output_embed.expand(b, -1, -1).to(hidden.dtype)], 1)
        blk, o = self.block, c.out_features
        x = tokens[:, -o:] + blk.attn(blk.norm1(tokens), queries=o)  # Block(keep=o), its FFN optional
        if c.ffn_dim:
            x = x + blk.ffn(blk.norm2(x))
        return self.readout(self.norm(x)).squeeze(-1)

    def fast(self, hidden: torch.Tensor) -> torch.Tensor:
        """The same layer as ``block(cat([hidden, outputs]), keep=outputs)``, one head of linear attention,
        computed with what the output tokens share across points done once: their norm, queries, keys and
        values are the same for every point (they are the same embeddings), so only the hidden tokens' keys
        and values are per point; and the linear attention's ``q (K^T V)`` is taken as ``(K q^T)^T V``, so that no
        ``d x d`` context is formed per point. 2.3x the points per second of the general block on our CPUs.
        """
        b, k, d = hidden.shape
        blk, attn = self.block, self.block.attn
        w_q, w_k, w_v = attn.qkv.weight.to(hidden.dtype).split(d, 0)
        out = self.output_embed.to(hidden.dtype)  # (O, D)
        o_norm = blk.norm1(out)
        q = (o_norm @ w_q.t()).softmax(-1)  # (O, D): the output tokens' queries, the same for every point
        h_norm = blk.norm1(hidden)
        keys = torch.cat([h_norm @ w_k.t(), (o_norm @ w_k.t()).expand(b, -1, -1)], 1)  # (B, K + O, D)
        values = torch.cat([h_norm @ w_v.t(), (o_norm @ w_v.t()).expand(b, -1, -1)], 1)
        # q (K^T V) = (K q^T)^T V: each token's weight for each output token, then a weighted sum of the values;
        # the same products as the context matrix's, reassociated (2.9x faster on CPU at these sizes)
        weights = (keys.softmax(1).reshape(-1, d) @ q.t()).view(b, keys.shape[1], -1)  # (B, K + O, O)
        mixed = torch.einsum("bto,btd->bod", weights, values)  # (B, O, D)
        x = out + attn.out(mixed)
        if self.config.ffn_dim:
            x = x + blk.ffn(blk.norm2(x))
        return self.readout(self.norm(x)).squeeze(-1)


class NeoGridField(nn.Module):
    """A pyramid of latents (``latents``, laid by ``layout``) read by a lean NeoMLP (``backbone``)."""

    # Decoding (neofield.render.Evaluator): 16,384 points a chunk, 1.5-1.7x the points per second of 2,048 on a
    # Big Buck Bunny field with sound (672 k against 393 k); eager, since compiled it ran at half the speed
    # (299 k against 595 k): inductor's grid_sample is slower than ATen's
    cpu_chunk, decode_compiles = 16384, False

    def __init__(self, config: NeoGridConfig, layout: PyramidLayout):
        super().__init__()
        if layout.tokens != config.tokens or layout.channels != config.channels:
            raise ValueError("the config's tokens and channels must be the layout's levels and channels")
        self.config, self.layout = config, layout
        self.latents = Latents(layout.sets, 1, layout.channels, init_std=1e-2)
        self.backbone = LeanNeoMLP(config)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.layout.gather(self.latents.table, coords))

    def num_parameters(self) -> dict[str, int]:
        backbone = sum(p.numel() for p in self.backbone.parameters())
        latents = self.latents.table.numel()
        return {"backbone": backbone, "latents": latents, "total": backbone + latents}


def pyramids_of(c: GridConfig) -> PyramidLayout:
    """The grid field's pyramids as a layout: the picture's over (x, y, t), the sound's over t."""
    pyramids = []
    if c.out_features > c.audio_outputs:
        pyramids.append(Pyramid((0, 1, 2), c.low, c.high, c.coarse, c.fine, c.levels))
    if c.audio_outputs:
        t = c.in_features - 1
        pyramids.append(Pyramid((t,), (c.low[t],), (c.high[t],), (c.audio_coarse,), (c.audio_fine,), c.audio_levels))
    return PyramidLayout(tuple(pyramids), c.channels)


def neogrid_for(low: tuple[float, ...], high: tuple[float, ...], picture: tuple[int, ...] | None,
                audio_samples: int | None, out_features: int, audio_outputs: int, parameters: int,
                dim: int = 8, hidden_tokens: int = 2, ffn_dim: int = 0) -> NeoGridField:
    """A NeoGrid field of about ``parameters`` parameters over the signal (pyramids sized as
    :func:`~.gridmlp.grid_config_for` sizes a grid field's: the finest level the signal's resolution scaled
    down evenly until they fit)."""
    layout = pyramids_of(grid_config_for(low, high, picture, audio_samples, out_features, audio_outputs, parameters))
    config = NeoGridConfig(len(low), out_features, layout.tokens, layout.channels, dim=dim,
                           hidden_tokens=hidden_tokens, ffn_dim=ffn_dim)
    return NeoGridField(config, layout)
