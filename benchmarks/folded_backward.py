"""NeoGrid's folded layer with its backward written out, against autograd's: measured, not adopted.

    python benchmarks/folded_backward.py [--batch 4096] [--repeats 5]

Training's path, ``neofield.fields.neogrid.LeanNeoMLP.fused``, runs the layer in a few fused kernels
(ATen's layer norm, one product for each hidden token's keys and values) and autograd takes its backward.
Here the layer is folded (``LeanNeoMLP.fold``) and feature-major (every per-point tensor ``(features, B)``,
points innermost, as decodes run it) with the chain rule written out by hand over contiguous rows. The
script checks it against autograd in float64, then times, for a sound, a video and a video-with-sound layer
(random 65 k-parameter fields, the default hidden tokens), best of ``--repeats``, interleaved:

- the layer alone, forward + backward, the fold included;
- a training step's forward + backward through the whole field (pyramid reads, layer, loss).

What it measured before the fused path, against autograd over the folded layer point-major (2-core EPYC,
torch 2.13.0, two runs; docs/field-designs.md): the layer alone 1.0-1.4x, the field's step 0.9-1.3x, and a
real fit's whole step on Bach (sampling and Adam too) 3.76 against 3.85 ms: within the machine's run-to-run
noise. So the codec kept autograd's backward, and then made what autograd differentiates fewer, larger
kernels (the fused path).

One point's layer, for the hidden tokens ``k`` and the output tokens ``o`` (``D`` features)::

    z = head^T l + head_bias           -> c_k (centred), kk_k (keys), v_k (values)
    s_k = rsqrt(mean(c_k^2) + eps)     the hidden token's layer norm
    e_k = exp(kk_k s_k - shift)        the keys' softmax over tokens, feature by feature
    inv = 1 / (sum_k e_k + o_sum)      its denominators (the output tokens' share is o_sum)
    w_k = q (e_k inv)                  each output token's weight on hidden token k
    x = tail^T inv + base + sum_k w_k (v_k s_k)^T
    y = (x . readout) rsqrt(mean(x^2) + eps) + readout_bias
"""

from __future__ import annotations

import argparse
import time

import torch

from neofield.fields.neogrid import LeanNeoMLP, NeoGridConfig, neogrid_for

FOLD_KEYS = ("head", "head_bias", "shift", "o_sum", "q", "tail", "base", "readout", "readout_bias")


def folded_layer(levels: torch.Tensor, fold: dict[str, torch.Tensor], hidden_tokens: int, dim: int,
                 eps: float) -> torch.Tensor:
    """``(B, levels)`` -> ``(B, O')`` through the folded weights ``fold``; differentiable in both."""
    dtype = levels.dtype
    weights = [fold[key].to(dtype) for key in FOLD_KEYS]
    return _FoldedLayer.apply(levels.t(), *weights, hidden_tokens, dim, eps).t()


class _FoldedLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lt, head, head_bias, shift, o_sum, q, tail, base, readout, readout_bias, k, d, eps):
        b = lt.shape[1]
        z = torch.addmm(head_bias[:, None], head.t(), lt).view(k, 3, d, b)
        centred, keys, values = z.unbind(1)  # (K, D, B) each
        s = torch.rsqrt(centred.pow(2).mean(1, keepdim=True) + eps)  # (K, 1, B)
        e = (keys * s - shift[:, None]).exp_()
        inverse = (e.sum(0) + o_sum[:, None]).reciprocal_()  # (D, B)
        p = e * inverse
        w = q @ p  # (K, O', B)
        x = torch.addmm(base[:, None], tail.t(), inverse).view(-1, d, b)  # (O', D, B)
        u = values * s
        for t in range(k):
            x.addcmul_(w[t][:, None], u[t][None])
        dot = torch.einsum("d,odb->ob", readout, x)
        r = torch.rsqrt(x.pow(2).mean(1) + eps)  # (O', B)
        ctx.save_for_backward(lt, head, q, tail, readout, z, s, e, inverse, p, w, u, x, dot, r)
        return dot * r + readout_bias

    @staticmethod
    def backward(ctx, g):
        lt, head, q, tail, readout, z, s, e, inverse, p, w, u, x, dot, r = ctx.saved_tensors
        k, d, b = z.shape[0], z.shape[2], z.shape[3]
        g = g.contiguous()
        gr = g * r
        d_readout_bias = g.sum().view(1)
        d_readout = (gr[:, None] * x).sum((0, 2))
        # through the final norm: y = (x . readout) r, r = (mean(x^2) + eps)^-1/2
        dx = gr[:, None] * readout[None, :, None] - (gr * dot * r * r / d)[:, None] * x  # (O', D, B)
        dx_flat = dx.view(-1, b)
        d_base = dx_flat.sum(1)
        d_tail = inverse @ dx_flat.t()
        d_inverse = tail @ dx_flat  # (D, B)
        dw = torch.stack([(dx * u[t][None]).sum(1) for t in range(k)])  # (K, O', B)
        du = torch.stack([(dx * w[t][:, None]).sum(0) for t in range(k)])  # (K, D, B)
        d_q = dw.transpose(0, 1).reshape(len(q), -1) @ p.transpose(0, 1).reshape(d, -1).t()
        dp = q.t() @ dw  # (K, D, B)
        d_inverse = d_inverse + (dp * e).sum(0)
        d_sum = -d_inverse * inverse * inverse  # through the reciprocal
        d_o_sum = d_sum.sum(1)
        da = (dp * inverse + d_sum) * e  # through exp, (K, D, B)
        d_shift = -da.sum((0, 2))
        centred, keys, values = z.unbind(1)
        ds = (da * keys).sum(1, keepdim=True) + (du * values).sum(1, keepdim=True)  # (K, 1, B)
        dz = torch.stack([-(ds * s.pow(3) / d) * centred, da * s, du * s], 1).view(-1, b)
        d_head = lt @ dz.t()
        d_head_bias = dz.sum(1)
        d_lt = head @ dz if ctx.needs_input_grad[0] else None
        return (d_lt, d_head, d_head_bias, d_shift, d_o_sum, d_q, d_tail, d_base, d_readout, d_readout_bias,
                None, None, None)


SHAPES = {  # name: the signal's shape, as neogrid_for takes it
    "sound": dict(low=(-10.0,), high=(10.0,), picture=None, audio_samples=300_000, out_features=1, audio_outputs=1),
    "video": dict(low=(-1.0,) * 3, high=(1.0,) * 3, picture=(320, 136, 50), audio_samples=None, out_features=3,
                  audio_outputs=0),
    "video + 6 ch sound": dict(low=(-1.0,) * 3, high=(1.0,) * 3, picture=(320, 180, 25), audio_samples=44_100,
                               out_features=9, audio_outputs=6),
}


def by_hand(net: LeanNeoMLP, levels: torch.Tensor) -> torch.Tensor:
    c = net.config
    return folded_layer(levels, net.fold(), c.hidden_tokens, c.dim, net.norm.eps)


def check() -> float:
    """The largest difference from autograd's outputs and gradients, float64, over three layer shapes."""
    worst = 0.0
    for outputs, tokens, hidden in ((1, 8, 2), (3, 6, 2), (9, 14, 3)):
        torch.manual_seed(0)
        net = LeanNeoMLP(NeoGridConfig(3, outputs, tokens=tokens, channels=2, hidden_tokens=hidden)).double()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        levels = torch.randn(tokens, 2, 96, dtype=torch.float64).permute(2, 0, 1).reshape(96, -1)
        results = []
        for path in (net.fused, lambda x: by_hand(net, x)):
            net.zero_grad()
            x = levels.clone().requires_grad_(True)
            y = path(x)
            (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
            results.append([y.detach(), x.grad] + [p.grad.clone() for p in net.parameters()])
        worst = max(worst, max((a - b).abs().max().item() for a, b in zip(*results)))
    return worst


def seconds_per_call(run, calls: int = 20) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - t) / calls


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"largest difference from autograd (float64): {check():.1e}")
    rows = []
    for name, shape in SHAPES.items():
        torch.manual_seed(0)
        field = neogrid_for(parameters=65_000, **shape)
        net = field.backbone
        coords = torch.rand(args.batch, len(shape["low"])) * 2 - 1
        x = field.layout.gather(field.latents.table, coords).detach().reshape(args.batch, -1).requires_grad_(True)
        layer = {"autograd": lambda: net.fused(x).square().mean().backward(),
                 "by hand": lambda: by_hand(net, x).square().mean().backward()}

        def step(path):
            lv = field.layout.gather(field.latents.table, coords).reshape(args.batch, -1)
            path(lv).square().mean().backward()

        steps = {"autograd": lambda: step(net.fused), "by hand": lambda: step(lambda lv: by_hand(net, lv))}
        timed = {}
        for _ in range(args.repeats):  # interleaved, best of all
            for kind, runs in (("layer", layer), ("step", steps)):
                for path, run in runs.items():
                    timed[kind, path] = min(timed.get((kind, path), float("inf")), seconds_per_call(run))
        rows.append((name, timed))
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}, batch {args.batch:,}, ms per call, best of "
          f"{args.repeats}\n")
    print("| layer | layer fwd+bwd: autograd | by hand | ratio | field step fwd+bwd: autograd | by hand | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in rows:
        la, lh, sa, sh = (t[k] * 1e3 for k in (("layer", "autograd"), ("layer", "by hand"), ("step", "autograd"),
                                                 ("step", "by hand")))
        print(f"| {name} | {la:.2f} | {lh:.2f} | {la / lh:.2f}x | {sa:.2f} | {sh:.2f} | {sa / sh:.2f}x |")


if __name__ == "__main__":
    main()
