"""The operating point a fixed lambda names: the default lambda of each kind of signal, and the latents' step and the
backbone's bit depth a fit at a lambda is stored at. Plain numbers measured on our clips (docs/rate-term.md);
rate control (:mod:`neofield.rate`) meets size and PSNR targets, this module only a lambda."""

from __future__ import annotations

from .latent_rate import LATENT_STEP


# the latents' step at a fixed lambda, per kind (else LATENT_STEP): Bach at lambda 0.001, 60 s, kept 39.2 dB of its
# float field's 43.1 at 0.2 and 42.3 at 0.05 in fewer bytes; 2 s of bikes at 0.06 gained 0.08-0.19 dB at 0.1-0.05
# for 5-13 % more bytes (docs/rate-term.md, "A fixed λ as the default, measured")
FIXED_STEPS = {"audio": 0.05}
# ... and a picture's finer at the top of its curve, where each latent gets more bits: LATENT_STEP x
# (bits / STEP_FROM_BITS) ** -STEP_SLOPE, where bits is what a latent is expected to get, BITS_AT[1] bits a point
# at lambda BITS_AT[0] (slope BITS_SLOPE) shared among the field's latents; never finer than (lambda /
# STEP_FROM_LAMBDA) ** LAMBDA_STEP_SLOPE times LATENT_STEP, the same steps on the field measured, which keeps
# the step continuous in lambda and the default (above STEP_FROM_LAMBDA) at LATENT_STEP. 2 s of bikes, 3,000
# steps, the 120 s field (0.17 latents a point): at lambda 0.01 (0.71 bits a latent) a step of 0.14 gave
# +0.48 dB for 4.5 % more bytes (the curve gives ~0.16 dB for that), at 0.003 (1.1 bits) 0.1 gave +0.20 dB in
# about the bytes 0.2 needed at 0.002 and 0.07 was worse, at 0.03 (0.43 bits) 0.1 was 0.3 dB under the curve;
# on the 300 s field (0.46 latents a point, 0.5 bits each at 0.003) 0.1 was 0.34 dB under it, 0.2 best. A
# video with sound was on its curve with the finer step (1 s of Big Buck Bunny at 0.005) and keeps
# FIXED_STEPS' rule (docs/rate-term.md, "A finer step at the top")
FINER_STEP_KINDS = ("video", "image")
STEP_FROM_LAMBDA, LAMBDA_STEP_SLOPE = 0.036, 0.28
BITS_AT, BITS_SLOPE = (0.01, 0.118), -0.37
STEP_FROM_BITS, STEP_SLOPE = 0.44, 0.76


def expected_bits_per_point(lam: float) -> float:
    """The latents' bits a point a picture's fit at ``lam`` is expected to spend (BITS_AT, BITS_SLOPE)."""
    at_lambda, at_bits = BITS_AT
    return at_bits * (lam / at_lambda) ** BITS_SLOPE


def fixed_step(kind: str, lam: float | None = None, latents_per_point: float | None = None) -> float:
    """The latents' quantization step under a rate term at a fixed ``lam``, for a signal of ``kind`` and a field
    of ``latents_per_point``; rounded as the bundle's metadata will hold it."""
    if kind in FINER_STEP_KINDS and lam is not None and 0 < lam < STEP_FROM_LAMBDA and latents_per_point:
        bits = expected_bits_per_point(lam) / latents_per_point
        step = LATENT_STEP * max(max(bits / STEP_FROM_BITS, 1.0) ** -STEP_SLOPE,
                                 (lam / STEP_FROM_LAMBDA) ** LAMBDA_STEP_SLOPE)
        return float(f"{max(step, LATENT_STEP / 16):.4g}")
    return FIXED_STEPS.get(kind, LATENT_STEP)


# The backbone's depth under a rate term at a fixed lambda, for a picture or a video with sound: BitDepths' 6 bits, or 8
# where the 2 bits more a weight are at most the kind's FINE_BACKBONE_SHARES of the bytes lambda is expected to spend.
# The layer's few hundred weights move the picture a lot at 6 bits (2 s of bikes at lambda 0.003: quantizing one
# tensor alone of a fitted field moved it by -0.9 to +0.6 dB), so the finetuning's last step lands anywhere in a
# spread of ~1 dB: the same 3,000 steps gave 37.27 dB eager and 36.22 compiled, and 37.32 and 37.34 at 8 bits (+0.8 %
# bytes); at lambda 0.03 32.97 and 32.60 at 6 bits, 33.01 and 33.02 at 8; at lambda 0.3 (~5.4 KB) 8 bits cost 3.2 %
# more bytes for +0.03 dB. A video with sound's share is its own: its layer is 4x a picture's (8 hidden tokens, for
# the sound) and its clip spends ~2x the bytes the pictures' law expects (1 s of Big Buck Bunny at 320x180, 3,000
# steps: at lambda 0.005 8 bits gave +0.43 and +0.24 dB over two seeds for 0.9 % more bytes; at 0.02 +0.06 dB for
# 2.4 %, at 0.08 +0.02 dB for 4.9 %: 0.03 takes the first and leaves the others). Sound alone keeps 6, unmeasured
# (docs/rate-term.md, "The backbone's depth")
FINE_BACKBONE_BITS = 8.0
FINE_BACKBONE_SHARES = {"video": 0.01, "image": 0.01, "audiovisual": 0.03}


def backbone_bits(kind: str, lam: float | None, n_points: int, weights: int, default: float) -> float:
    """The backbone's bit depth for a fit of ``weights`` backbone weights at a fixed ``lam`` over ``n_points``
    points of a signal of ``kind`` (``default`` where the rule does not reach: sound, no lambda, a small bundle)."""
    share = FINE_BACKBONE_SHARES.get(kind)
    if share is None or not lam or lam <= 0:
        return default
    extra = (FINE_BACKBONE_BITS - default) * weights
    return FINE_BACKBONE_BITS if 0 < extra <= share * expected_bits_per_point(lam) * n_points else default


# An encode given no target, no depths and no lambda fits a neogrid field at this lambda, per kind: a constant
# slope of the rate-distortion curve, as x264's CRF is a constant quality, so the bytes follow what the signal
# needs and the field takes what the time budget trains. Against the 6-bit latents on the preset's field at 120 s:
# 2 s of bikes +1.3 dB for 1 % more bytes, Bach +2.5 dB in 23 % fewer; the whole bikes.mp4 at the default budget
# 28.9 dB against 23.4, in 3.3x x264's bytes at that PSNR (docs/rate-term.md, "The default: a fixed λ")
DEFAULT_LAMBDAS = {"video": 0.06, "image": 0.06, "audiovisual": 0.06, "audio": 0.001}


def default_lambda(kind: str) -> float:
    """The rate term's lambda of an encode that names no operating point, for a signal of ``kind``."""
    return DEFAULT_LAMBDAS[kind]
