"""Self-attention over a point's tokens: efficient (linear) and softmax.

Both take ``(B, N, D)`` where ``B`` is the number of coordinates in the batch
and ``N`` the few tokens of each (inputs + hidden + outputs): attention never
crosses points, only tokens of one point. They share the projections and
differ only in how queries, keys and values are mixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TokenAttention(nn.Module):
    """Multi-head attention skeleton: bias-free q/k/v projection, output projection."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
        """``(B, N, D) -> (B, N, D)``; with ``queries = Q``, only the last ``Q`` tokens
        attend (to all ``N``), giving ``(B, Q, D)``. The last layer of NeoMLP needs
        only its output tokens, and this saves their projections and mixing for the rest."""
        b, n, d = x.shape
        h, dh = self.heads, d // self.heads
        # (3, B, heads, N, d_head): one copy up front keeps the matmuls contiguous,
        # measured ~10 % faster on CPU than einsum's implicit permutes.
        q, k, v = self.qkv(x).view(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)
        if queries is not None:
            q, n = q[:, :, -queries:], queries
        y = self.mix(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))

    def mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LinearAttention(TokenAttention):
    """Efficient attention of Shen et al. (2021), NeoMLP's default.

    Queries are normalised by a softmax over their features, keys by a softmax
    over the tokens; the context ``K^T V`` is a ``d x d`` matrix per head, so
    the cost is linear in the token count.
    """

    def mix(self, q, k, v):
        context = k.softmax(dim=-2).transpose(-1, -2) @ v  # (B, heads, d_head, d_head)
        return q.softmax(dim=-1) @ context


class SoftmaxAttention(TokenAttention):
    """Standard scaled dot-product attention among a point's tokens."""

    def mix(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


ATTENTION = {"linear": LinearAttention, "softmax": SoftmaxAttention}
