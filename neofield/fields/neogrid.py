"""NeoGrid: NeoMLP whose hidden tokens are latents laid over the signal, cheap enough to run per pixel.

The paper's NeoMLP gives each coordinate input tokens (Fourier features), hidden and output tokens
(latents), and mixes them with layers of attention: ~177 k multiply-adds a pixel on our CPU preset. Here
the detail lives in a :class:`~.pyramid.PyramidLayout`: latent grids over space and time at several
resolutions, read at each coordinate (a few multiply-adds per value). One linear map turns what the
levels read into ``hidden_tokens`` hidden tokens of width ``dim`` - the pyramid is a learned, local
positional encoding in place of Fourier features - and one NeoMLP layer of attention, queried by the
output tokens alone (the last layer needs nothing else), mixes them with the output tokens; each output
token is read out to one scalar. ~1 k multiply-adds a pixel with 2 hidden tokens (:mod:`.cost`), ~3 k a
sample of sound with 8.

Per step it fits more than the same pyramid read by a 2 x 32 MLP (``--arch grid``), the more with more
hidden tokens; its step costs 2-3x the MLP's on a CPU, and at equal time it is ahead on all three of our
signals (``benchmarks/prototypes.py``, ``benchmarks/equal_time.py``; ``docs/field-designs.md``).

Output tokens are learned embeddings shared by every coordinate; all that is local is in the pyramid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import runtime
from .gridmlp import AUDIO_LEVELS, CHANNELS, PICTURE_LEVELS, GridConfig, grid_config_for
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
    hidden_tokens: int = 2  # the codec picks them by the kind of signal (fields.registry.HIDDEN_TOKENS)
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

    @property
    def folds(self) -> bool:
        """Whether :meth:`fused` and :meth:`fast_by_feature` compute this layer: one head of linear attention and
        no FFN (the default)."""
        c = self.config
        return c.heads == 1 and c.attention == "linear" and not c.ffn_dim

    def forward(self, levels: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """``outputs`` picks the output tokens computed (all of them by default): a decode of a video with
        sound's pictures needs 3 of its 9."""
        if self.folds:
            path = self.fused if torch.is_grad_enabled() else self.fast_by_feature
            return path(levels.reshape(len(levels), -1), outputs)
        b, c = len(levels), self.config
        hidden = self.to_hidden(levels.reshape(b, -1)).view(b, c.hidden_tokens, c.dim)
        tokens = torch.cat([hidden, self.output_embed.expand(b, -1, -1).to(hidden.dtype)], 1)
        blk, o = self.block, c.out_features
        x = tokens[:, -o:] + blk.attn(blk.norm1(tokens), queries=o)  # Block(keep=o), its FFN optional
        if c.ffn_dim:
            x = x + blk.ffn(blk.norm2(x))
        y = self.readout(self.norm(x)).squeeze(-1)
        return y if outputs is None else y[:, outputs]

    def fold(self, outputs: slice | None = None) -> dict[str, torch.Tensor]:
        """The layer's weights composed into the few per-point products of a decode (:meth:`fast_by_feature`).
        ``P = I - 1/D`` centres a token, the linear half of a layer norm; every linear map after one is composed
        with the next, so only the norms' scales, the keys' softmax and the attention's weights are left per
        point."""
        c = self.config
        d, k = c.dim, c.hidden_tokens
        attn = self.block.attn
        w_q, w_k, w_v = attn.qkv.weight.split(d, 0)
        centre = torch.eye(d, dtype=w_q.dtype, device=w_q.device) - 1.0 / d
        chosen = slice(None) if outputs is None else outputs
        embed = self.output_embed[chosen]
        o_norm = self.block.norm1(self.output_embed)  # every output token is a key and a value...
        q = (o_norm[chosen] @ w_q.t()).softmax(-1)  # ...those computed are queries: (O', D)
        o_keys = o_norm @ w_k.t()  # (O, D), the same at every point
        shift = self._shift(o_keys, w_k)  # the keys' softmax runs over tokens, feature by feature
        o_exp = (o_keys - shift).exp()  # (O, D)
        values = w_v.t() @ attn.out.weight.t() @ centre  # a normed token -> its value, projected out, centred
        # the output tokens' share of the mix, per feature of the softmax's denominator: (D, O' * D)
        shared = o_exp.t() @ (o_norm @ values)  # (D, D)
        tail = (q.t()[:, :, None] * shared[:, None, :]).reshape(d, -1)
        # the hidden token, centred; its keys; its values: all linear in what the levels read
        per_token = torch.cat([centre, centre @ w_k.t(), centre @ values], 1)  # (D, 3D)
        w_h = self.to_hidden.weight.view(k, d, -1)
        head = torch.einsum("kdl,de->lke", w_h, per_token).reshape(w_h.shape[-1], -1)  # (levels, K * 3D)
        head_bias = (self.to_hidden.bias.view(k, d) @ per_token).reshape(-1)
        base = ((embed + attn.out.bias) @ centre).reshape(-1)  # each output token's own residual, centred
        return {"head": head, "head_bias": head_bias, "shift": shift, "o_sum": o_exp.sum(0), "q": q,
                "tail": tail, "base": base, "readout": self.readout.weight.view(d), "readout_bias": self.readout.bias}

    def _folded(self, outputs: slice | None) -> dict[str, torch.Tensor]:
        """:meth:`fold`, kept between the chunks of a decode (no gradients, weights unchanged): ~0.8 ms a
        chunk of 16,384 points, a tenth of its time."""
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self.fold(outputs)
        key = (None if outputs is None else (outputs.start, outputs.stop, outputs.step),
               tuple((p.data_ptr(), p._version) for p in self.parameters()))
        if getattr(self, "_fold_cache", (None,))[0] != key:
            self._fold_cache = (key, self.fold(outputs))
        return self._fold_cache[1]

    def fused(self, levels: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """Training's path: the same layer as ``block(cat([hidden, outputs]), keep=outputs)`` (one head of
        linear attention, no FFN) from ``(B, levels)``, in a few large kernels that autograd differentiates
        cheaply. Each hidden token's layer norm is ATen's fused one; its keys and values (projected out) are
        one product of the normed token; the keys' softmax over tokens is taken against the output tokens'
        share, which is the same at every point; each output token mixes the hidden tokens' values by one
        batched product. Forward + backward at 4,096 points on 2 cores, against the folded layer point-major
        (the training path before it): 1.35-1.5x as fast with 2 hidden tokens, 2.4x with 8. Its cost grows
        slowly with the hidden tokens, which is what made 8 of them, which learn far more per step, pay at
        equal time on sound (``docs/field-designs.md``)."""
        c = self.config
        b, d, k = len(levels), c.dim, c.hidden_tokens
        attn = self.block.attn
        w_q, w_k, w_v = attn.qkv.weight.split(d, 0)
        chosen = slice(None) if outputs is None else outputs
        o_norm = self.block.norm1(self.output_embed)
        q = (o_norm[chosen] @ w_q.t()).softmax(-1)  # (O', D): the queries, those computed only
        w_kv = torch.cat([w_k, attn.out.weight @ w_v]).t()  # (D, 2D): a normed token -> its key, its value out
        o_keys, o_values = (o_norm @ w_kv).split(d, -1)  # (O, D) each
        shift = self._shift(o_keys, w_k)
        o_exp = (o_keys - shift).exp()
        # the output tokens' values, weighted per feature of the softmax by their exps and the queries: (D, O' D)
        tail = (q.t()[:, :, None] * (o_exp.t() @ o_values)[:, None, :]).reshape(d, -1)
        normed = self.block.norm1(self.to_hidden(levels).view(b, k, d))
        keys, values = (normed @ w_kv).split(d, -1)  # (B, K, D) each
        e = (keys - shift).exp()
        inverse = 1.0 / (e.sum(1) + o_exp.sum(0))  # (B, D): the softmax's denominators
        weights = (e * inverse[:, None]) @ q.t()  # (B, K, O'): what each output token takes of each hidden one
        x = torch.addmm((self.output_embed[chosen] + attn.out.bias).reshape(-1), inverse, tail).view(b, -1, d)
        x = torch.baddbmm(x, weights.transpose(1, 2), values)  # + the hidden tokens' values: (B, O', D)
        return (self.norm(x) @ self.readout.weight.t()).squeeze(-1) + self.readout.bias

    @staticmethod
    def _shift(o_keys: torch.Tensor, w_k: torch.Tensor) -> torch.Tensor:
        """A shift per feature for the keys' softmax over tokens, in place of a per-point maximum: the output
        tokens' largest key keeps their exps <= 1 (their sum >= 1: never 0), and since a hidden key is at most
        |LN(h)| |w_k| = sqrt(D) |w_k|, the shift is raised where that bound passes 80 (float32's exp overflows
        past 88). Exact while keys stay within +-84 (tests/test_neogrid.py); trained fields' are a few units."""
        bound = w_k.shape[1] ** 0.5 * w_k.norm(dim=1)
        return torch.maximum(o_keys.max(0).values, bound - 80).detach()

    def fast_by_feature(self, levels: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """A decode's path: the layer with its weights :meth:`fold` ed, computed feature-major: every per-point
        tensor ``(features, B)``, the points innermost, so each element-wise operation runs over contiguous rows
        and the softmax's sum over tokens adds whole rows. The layout's reads are laid so in memory already
        (``levels.t()`` is contiguous). One product from the levels to each hidden token's centred self, keys and
        values; the keys' softmax over tokens, where the output tokens' share is the same at every point; the
        final norm and read-out as a dot product and a scale. Without gradients only: its forward ran 1.2-2.1x
        a point-major one's, but its backward, whose broadcasts reduce over the rows, was no faster
        (``docs/field-designs.md``)."""
        f, c = self._folded(outputs), self.config
        b, d, k = len(levels), c.dim, c.hidden_tokens
        eps, dtype = self.norm.eps, levels.dtype
        z = torch.addmm(f["head_bias"].to(dtype)[:, None], f["head"].to(dtype).t(), levels.t()).view(k, 3, d, b)
        centred, keys, values = z.unbind(1)  # (K, D, B) each
        scale = torch.rsqrt(centred.pow(2).mean(1, keepdim=True) + eps)  # (K, 1, B)
        e = (keys * scale - f["shift"].to(dtype)[:, None]).exp()
        inverse = 1.0 / (e.sum(0) + f["o_sum"].to(dtype)[:, None])  # (D, B)
        weights = f["q"].to(dtype) @ (e * inverse)  # (K, O', B)
        x = torch.addmm(f["base"].to(dtype)[:, None], f["tail"].to(dtype).t(), inverse).view(-1, d, b)  # (O', D, B)
        values = values * scale
        for t in range(k):
            x = x.addcmul(weights[t][:, None], values[t][None])
        y = torch.einsum("d,odb->ob", f["readout"].to(dtype), x) * torch.rsqrt(x.pow(2).mean(1) + eps)
        return (y + f["readout_bias"].to(dtype)).t()


class NeoGridField(nn.Module):
    """A pyramid of latents (``latents``, laid by ``layout``) read by a lean NeoMLP (``backbone``)."""

    # Decoding (neofield.render.Evaluator): 16,384 points a chunk, 1.5-1.7x the points per second of 2,048 on a
    # Big Buck Bunny field with sound (672 k against 393 k); only the outputs a stream needs
    cpu_chunk, picks_outputs = 16384, True
    # what --compile auto fits eagerly (neofield.fit): compiled, a step of a sound (8 hidden tokens, the fused
    # layer) ran 11.2 ms against 7.4 eager on Bach, and of video with sound 12.5 against ~10 on Big Buck Bunny;
    # pictures alone gain (2 s of bikes: 4.85 against 5.78 ms)
    eager_kinds = ("audio", "audiovisual")

    def __init__(self, config: NeoGridConfig, layout: PyramidLayout):
        super().__init__()
        if layout.tokens != config.tokens or layout.channels != config.channels:
            raise ValueError("the config's tokens and channels must be the layout's levels and channels")
        self.config, self.layout = config, layout
        self.latents = Latents(layout.sets, 1, layout.channels, init_std=1e-2)
        self.backbone = LeanNeoMLP(config)

    def forward(self, coords: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
        """Field values ``(B, O)`` at ``coords (B, I)``; ``outputs`` picks some of them, at less cost."""
        return self.backbone(self.layout.gather(self.latents.table, coords), outputs)

    def compiled(self) -> Callable[..., torch.Tensor]:
        """The forward pass for a compiled decode: the backbone through torch.compile (inductor fuses its
        small operations: 6x eager's points per second on 2 cores), the reads eager (inductor's grid_sample
        ran at half the speed of ATen's)."""
        backbone = runtime.compiled(self.backbone)
        table = self.latents.table

        def forward(coords: torch.Tensor, outputs: slice | None = None) -> torch.Tensor:
            return backbone(self.layout.gather(table, coords), outputs)

        return forward

    def num_parameters(self) -> dict[str, int]:
        backbone = sum(p.numel() for p in self.backbone.parameters())
        latents = self.latents.table.numel()
        return {"backbone": backbone, "latents": latents, "total": backbone + latents}


def pyramids_of(c: GridConfig, taps: int = 0) -> PyramidLayout:
    """The grid field's pyramids as a layout: the picture's over (x, y, t), its finest ``taps`` levels tapped
    (:class:`~.pyramid.Pyramid`), the sound's over t."""
    pyramids = []
    if c.out_features > c.audio_outputs:
        pyramids.append(Pyramid((0, 1, 2), c.low, c.high, c.coarse, c.fine, c.levels, taps))
    if c.audio_outputs:
        t = c.in_features - 1
        pyramids.append(Pyramid((t,), (c.low[t],), (c.high[t],), (c.audio_coarse,), (c.audio_fine,), c.audio_levels))
    return PyramidLayout(tuple(pyramids), c.channels)


def neogrid_for(low: tuple[float, ...], high: tuple[float, ...], picture: tuple[int, ...] | None,
                audio_samples: int | None, out_features: int, audio_outputs: int, parameters: int,
                dim: int = 8, hidden_tokens: int = 2, ffn_dim: int = 0, time_weight: float = 1.0,
                taps: int = 0) -> NeoGridField:
    """A NeoGrid field of about ``parameters`` parameters over the signal: its layer, and pyramids in the rest
    (sized as :func:`~.gridmlp.grid_config_for` sizes a grid field's: the finest level the signal's resolution
    scaled down until they fit, its time axis ``time_weight`` times finer than space; the picture's finest
    ``taps`` levels tapped)."""
    taps = taps if picture else 0
    tokens = (PICTURE_LEVELS + len(Pyramid.TAP_OFFSETS) * taps if picture else 0) + \
        (AUDIO_LEVELS if audio_outputs else 0)
    config = NeoGridConfig(len(low), out_features, tokens, CHANNELS, dim=dim, hidden_tokens=hidden_tokens,
                           ffn_dim=ffn_dim)
    layout = pyramids_of(grid_config_for(low, high, picture, audio_samples, out_features, audio_outputs, parameters,
                                         network=layer_parameters(config), time_weight=time_weight), taps)
    return NeoGridField(config, layout)


def without_idle_taps(field: nn.Module, step: float | None) -> nn.Module:
    """``field`` without the taps of a pyramid whose tapped levels' latents all round to 0 at ``step``: such a level
    reads 0 at every point, at its taps too, so their columns of the linear map multiply nothing, and the field
    without them computes what the field with them computes, with the latents at the step (the bundle then
    quantizes the smaller map: 128 weights fewer, ~80 bytes at the default depth; a short clip at the default
    lambda leaves its two finest levels at 0). Any other field (no step, no taps, or a tapped level in use) is
    returned as it is."""
    layout = getattr(field, "layout", None)
    if step is None or not isinstance(field, NeoGridField) or not any(p.taps for p in layout.pyramids):
        return field
    rounded = torch.round(field.latents.table.detach().float() / torch.tensor(step, dtype=torch.float32))
    spans, channels = layout.spans(), layout.channels
    kept, pyramids, token, level = [], [], 0, 0
    for p in layout.pyramids:
        tapped = spans[level + p.levels - p.taps:level + p.levels]
        idle = p.taps > 0 and all(bool((rounded[a:b] == 0).all()) for a, b in tapped)
        reads = p.levels if idle else p.tokens
        kept += range(token * channels, (token + reads) * channels)  # the map's columns of the reads kept
        pyramids.append(dataclasses.replace(p, taps=0) if idle else p)
        token, level = token + p.tokens, level + p.levels
    if len(kept) == layout.tokens * channels:
        return field
    untapped = PyramidLayout(tuple(pyramids), channels)
    lean = NeoGridField(dataclasses.replace(field.config, tokens=untapped.tokens), untapped)
    state = field.state_dict()
    state["backbone.to_hidden.weight"] = state["backbone.to_hidden.weight"][:, kept]
    lean.load_state_dict(state)
    return lean.to(field.latents.table.device).train(field.training)


def layer_parameters(c: NeoGridConfig) -> int:
    """Parameters of :class:`LeanNeoMLP` (the field's backbone), computed without making it."""
    to_hidden = c.tokens * c.channels * c.hidden_tokens * c.dim + c.hidden_tokens * c.dim
    ffn = (c.dim * c.ffn_dim + c.ffn_dim) + (c.ffn_dim * c.dim + c.dim) if c.ffn_dim else 0
    block = 3 * c.dim * c.dim + (c.dim * c.dim + c.dim) + ffn  # qkv (no bias), out, the FFN
    return to_hidden + c.out_features * c.dim + block + c.dim + 1  # + output tokens, read-out
