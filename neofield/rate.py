"""Rate control: a size or a quality target turned into a model width and bit depths, or a rate term.

A size or PSNR target on the default field (``neogrid``, quantized) is met by the rate term
(:mod:`neofield.latent_rate`, issue 24). For a size, :class:`SteeredRate` gives the field as many parameters
as the target asks (:data:`PARAMETERS_PER_BYTE`), the fit steers lambda until the latents cost their share
of the bytes, and if the written streams still miss, the latents' step is searched to land within
:data:`SIZE_TOLERANCE`; for a PSNR, the fit steers lambda by a probe's PSNR of the field with its latents
rounded. A target on the other fields sets two knobs, at two moments:

* **before the fit**, the model's width ``D`` is picked from :data:`WIDTHS` so
  that its parameters, at the ~5 coded bits each that 6-bit quantization
  gives, land near the size asked for (:func:`width_for_size`);
* **when quantization-aware finetuning starts** (the last 10 % of the fit),
  the bit depth is searched on the field as it then is: the depth whose coded
  streams fill the byte budget (:func:`bits_for_size`), or the lowest depth
  whose PSNR on a fixed sample of points still meets the target
  (:func:`bits_for_psnr`). The finetuning then trains for exactly that depth.

Fractional depths (levels ``round(2**bits)``) make the coded size a nearly
continuous function of the depth, so a size lands within a few percent.
:class:`RateControl` is what an encode holds while it fits: the depth it
chose when finetuning started, searched again if finetuning moved the size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import bundle as bundle_io, streams
from .errors import NeofieldError
from .fields.neomlp import NeoMLPField
from .probe import PSNR_POINTS, PsnrProbe, masked_mse, mse_to_psnr  # noqa: F401  (re-exported)
from .latent_rate import LATENT_STEP, RateTerm
from .options import parse_bitrate, parse_bytes  # noqa: F401  (re-exported)
from .quantize import BitDepths, levels_for
from .signal import Signal

# Coded bits per parameter at the default 6-bit depth after finetuning, measured:
# 5.05 on the demo clip (33,217 parameters), 4.90 on 2 s of bikes at 320x136.
BITS_PER_PARAMETER = 5.0
WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96, 128)  # NeoMLP's ladder: token width D; FFN 4D
# the latent-grid fields' ladder: parameters, 2,000 to 4 M by factors of sqrt(2) (their pyramids' resolution)
PARAMETERS = tuple(int(round(2000 * 2 ** (k / 2), -2)) for k in range(23))


def ladder(arch: str) -> tuple[int, ...]:
    """The sizes rate control picks from: NeoMLP's widths, or the grids' parameter counts."""
    return PARAMETERS if arch in ("neogrid", "grid") else WIDTHS
SEARCH_BITS = (2.0, 12.0)  # depths the search may choose
SIZE_TOLERANCE = 0.10  # a size target lands within +-10 %


@dataclass(frozen=True)
class Target:
    """What the user asked for: a size in bytes, or a PSNR in dB (video PSNR for
    pictures and video with sound, audio PSNR for sound alone)."""

    bytes: int | None = None
    psnr: float | None = None

    def describe(self) -> str:
        return f"{self.bytes:,} bytes" if self.bytes is not None else f"PSNR {self.psnr:g} dB"


def width_for_size(make: Callable[[int], NeoMLPField], target_bytes: int, side_bytes: int,
                   sizes: tuple[int, ...] = WIDTHS) -> int:
    """The rung of the ladder ``sizes`` whose predicted size is nearest the target (in log).

    ``make(size)`` builds the field at that rung (NeoMLP's width ``D``, a grid's parameter count); its
    parameter count, at :data:`BITS_PER_PARAMETER`, plus the side information predicts the bytes.
    """
    best, best_gap = sizes[0], math.inf
    for width in sizes:
        predicted = make(width).num_parameters()["total"] * BITS_PER_PARAMETER / 8 + side_bytes
        gap = abs(math.log(predicted / max(target_bytes, 1)))
        if gap < best_gap:
            best, best_gap = width, gap
    return best


def coded_bytes(field: NeoMLPField, bits: float) -> int:
    """The coded streams' bytes with every tensor at ``bits``."""
    return sum(streams.coded_bytes(bundle_io.quantize_state(field, BitDepths(bits, bits)), {}).values())


def bits_for_size(field: NeoMLPField, stream_bytes: int) -> float:
    """The highest depth whose coded streams fit in ``stream_bytes``: a bisection
    over whole level counts (the size grows with them, up to coding noise)."""
    lo, hi = (levels_for(b) for b in SEARCH_BITS)
    if coded_bytes(field, math.log2(lo)) > stream_bytes:
        return math.log2(lo)
    if coded_bytes(field, math.log2(hi)) <= stream_bytes:
        return math.log2(hi)
    while hi - lo > 1:  # coded(lo) fits, coded(hi) does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if coded_bytes(field, math.log2(mid)) <= stream_bytes else (lo, mid)
    return math.log2(lo)


def quantized_psnr(field: NeoMLPField, probe: PsnrProbe, bits: BitDepths, latent_step: float | None,
                   state: dict[str, torch.Tensor]) -> float:
    """The probe's PSNR of ``field`` as a bundle would hold it at ``bits`` (its latents at ``latent_step``, if
    given); then the field is put back to ``state``, its weights as they were."""
    bundle_io.round_weights(field, bundle_io.QUANTIZED, bits, latent_step=latent_step)
    value = probe(field)
    field.load_state_dict(state)
    return value


def bits_for_psnr(field: NeoMLPField, probe: PsnrProbe, target_psnr: float) -> float:
    """The lowest depth whose quantized field still scores ``target_psnr`` on the
    probe (bisection). Chosen before the finetuning, which then recovers part of
    the rounding loss, so the choice errs on the safe side."""
    state = {k: v.clone() for k, v in field.state_dict().items()}

    def score(bits: float) -> float:
        return quantized_psnr(field, probe, BitDepths(bits, bits), None, state)

    lo, hi = (levels_for(b) for b in SEARCH_BITS)
    if score(math.log2(hi)) < target_psnr:
        return math.log2(hi)
    while hi - lo > max(1, lo // 16):  # to within ~0.1 bit: score(hi) meets the target, score(lo) may not
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if score(math.log2(mid)) >= target_psnr else (mid, hi)
    return math.log2(hi)


# ------------------------------------------------------- during a fit ----
PSNR_MARGIN = 0.1  # dB: what a PSNR target out of the fit's reach lets quantization cost
SIDE_BYTES = 600  # metadata, quantization parameters and headers of a quantized bundle (420-550 B measured, v6)
SIDE_MARGIN = 120  # bytes of the fit and quality record a trial bundle does not hold yet (72-94 measured, v6)


class RateControl:
    """Chooses the bit depths for a target when finetuning starts, and again after
    the fit if the finetuning moved the size out of tolerance."""

    def __init__(self, target: Target, signal: Signal, meta: dict):
        self.target, self.meta = target, meta
        self.probe = PsnrProbe(signal) if target.psnr is not None else None
        self.bits: BitDepths | None = None
        self.float_psnr: float | None = None  # the field's probe PSNR before quantization
        self.notes: list[str] = []

    def choose(self, field_: NeoMLPField) -> BitDepths:
        if self.target.bytes is not None:
            depth = bits_for_size(field_, self.target.bytes - self.side_bytes(field_))
        else:
            self.float_psnr = self.probe(field_)
            goal = self.target.psnr
            if self.float_psnr < goal + PSNR_MARGIN:  # out of reach: no depth gets there, so spend no more bits
                goal = self.float_psnr - PSNR_MARGIN  # than it takes to keep what the fit reached
                self.notes.append(f"the fit reached {self.float_psnr:.2f} dB before quantization, short of the "
                                  f"target: quantized to keep that within {PSNR_MARGIN:g} dB")
            depth = bits_for_psnr(field_, self.probe, goal)
        self.bits = BitDepths(depth, depth)
        return self.bits

    def to_dict(self) -> dict:
        """The choice made when finetuning started, for a checkpoint."""
        return {"bits": self.bits.to_dict() if self.bits is not None else None, "float_psnr": self.float_psnr,
                "notes": list(self.notes)}

    def restore(self, saved: dict) -> None:
        try:
            self.bits = BitDepths(**saved["bits"]) if saved.get("bits") else None
            self.float_psnr, self.notes = saved.get("float_psnr"), [str(n) for n in saved.get("notes", [])]
        except (TypeError, ValueError, KeyError) as e:
            raise NeofieldError(f"the checkpoint's rate control is damaged ({e})") from None

    def side_bytes(self, field_: NeoMLPField) -> int:
        """Everything but the coded streams, from a trial bundle (plus room for the fit and quality record)."""
        meta = {**self.meta, "quantization": {"bits": BitDepths().to_dict()}}
        draft = bundle_io.pack(field_, meta, bundle_io.quantize_state(field_, BitDepths()), contexts={})
        return bundle_io.stored_bytes(draft)["side"] + SIDE_MARGIN

    def finish(self, field_: NeoMLPField) -> BitDepths:
        """The depths to store: the finetuned ones, unless the size drifted past tolerance."""
        if self.bits is None:  # the fit stopped before finetuning began
            self.notes.append("the fit stopped before quantization-aware finetuning began")
            return self.choose(field_)
        if self.target.bytes is not None:
            side = self.side_bytes(field_)
            size = coded_bytes(field_, self.bits.backbone) + side
            if abs(size / self.target.bytes - 1) > SIZE_TOLERANCE / 2:
                self.notes.append(f"finetuning moved the size to {size:,} bytes; depth searched again")
                return self.choose(field_)
        return self.bits

    def outcome(self, nbytes: int, quality: dict, width: int | None) -> dict:
        out = {"asked": self.target.describe(), "bytes": nbytes, "bits": self.bits.to_dict(), "width": width,
               "notes": list(self.notes)}
        if self.target.bytes is not None:
            off = nbytes / self.target.bytes - 1
            out["size_error"] = round(off, 4)
            if abs(off) > SIZE_TOLERANCE:
                low, high = SEARCH_BITS
                out["notes"].append(f"missed the size by {off:+.0%}: the depth search stops at {low:g}-{high:g} "
                                    "bits; a different --segments or --preset moves the size further")
        else:
            key = "audio_psnr_db" if "video_psnr_db" not in quality else "video_psnr_db"
            reached = quality.get(key)
            out["psnr"] = reached
            if reached is not None and reached < self.target.psnr:
                why = (f"the fit itself reached {self.float_psnr:.2f} dB before quantization in this budget: give "
                       "it more --time-budget or a larger --preset" if self.float_psnr is not None
                       and self.float_psnr < self.target.psnr + PSNR_MARGIN else
                       f"quantizing to {self.bits.backbone:g} bits cost more than the search expected")
                out["notes"].append(f"missed the PSNR target by {self.target.psnr - reached:.2f} dB: {why}")
        return out


# ---------------------------------------------- a size target met by the rate term (neogrid) ----
PARAMETERS_PER_BYTE = 12  # a steered field's parameters per byte of the target (docs/rate-term.md)
MIN_STEERED_PARAMETERS = 32_000  # ... never fewer: below this a field runs out of detail, not of bits
MAX_PARAMETERS_PER_POINT = 0.5  # ... nor more than this per point of the signal (it would store it raw)
# ... nor more than a time budget trains: in 60 s on 2 s of bikes 181-207 k parameters fit best, 384 k lost
# 1.1 dB at 32 KB and 724 k 1.2 dB at 64 KB (docs/rate-term.md). Past GROWTH_SECONDS of budget the field grows
# on only while it has under LONG_FIT_PARAMETERS_PER_POINT: a field already that large relative to its signal
# turns the extra time into steps, which the learning rate falling with them (schedule.peak_lr) makes worth more
# than parameters (2 s of bikes at 320x136, 600 s a point: 362 k parameters, a sixth of one a point, +26.7 %
# BD-rate against x264 where 1.0 M was +38.1 %; at 300 s 1-8 % lower loss), where a larger signal still wants
# the larger field (bikes at 640x272, 300 s: on all 10 s a 26 % higher loss at 362 k than at 1.0 M; on its
# first second 1.6 % at 362 k and 1.3 % at the 724 k rung this rule gives it; docs/rate-term.md, "The field
# stops growing")
PARAMETERS_PER_SECOND, GROWTH_SECONDS, LONG_FIT_PARAMETERS_PER_POINT = 3_500, 120.0, 1 / 6
# the latents are fitted at LATENT_STEP while they get up to this many bits each; each bit more halves the
# step (at high rates a uniform quantizer's entropy grows by a bit as its step halves), down to a 16th
BITS_PER_LATENT_AT_STEP = 1.0
# where a steered fit starts lambda: a power law through the 60 s fits of docs/rate-term.md, bits per point of
# the latents -> lambda (bikes: 0.059 bits a point at 0.08, Bach: 0.12; the slope between -1.8 and -2.4)
LAMBDA_AT, LAMBDA_SLOPE = (0.08, 0.08), -2.0
# the latents' step may move by these factors to land the size after the fit: a short fit's latents, still
# near their start, fill a size only at a fine step
STEP_SEARCH = (1 / 64, 8.0)


def steered_parameters(target_bytes: int | None, n_points: int, seconds: float | None = None) -> int:
    """The rung of :data:`PARAMETERS` a field fitted for ``target_bytes`` (None: for a PSNR, as large as the caps
    allow) under a rate term gets, for a signal of ``n_points`` points and a fit of ``seconds`` (None: a fit by
    steps or epochs, not capped by time). Past :data:`GROWTH_SECONDS` a longer budget buys steps, not size, once
    the field has :data:`LONG_FIT_PARAMETERS_PER_POINT` parameters a point."""
    want = MAX_PARAMETERS_PER_POINT * n_points
    if target_bytes is not None:
        want = min(max(PARAMETERS_PER_BYTE * target_bytes, MIN_STEERED_PARAMETERS), want)
    if seconds is not None:
        by_time = PARAMETERS_PER_SECOND * seconds
        if seconds > GROWTH_SECONDS:
            grown = PARAMETERS_PER_SECOND * GROWTH_SECONDS
            by_time = max(grown, min(by_time, LONG_FIT_PARAMETERS_PER_POINT * n_points))
        want = min(want, max(by_time, MIN_STEERED_PARAMETERS))
    return min(PARAMETERS, key=lambda p: abs(math.log(p / want)))


def lambda_for(bits_per_point: float) -> float:
    """The rate term's lambda expected to spend ``bits_per_point`` on the latents (a start: the fit steers it)."""
    at_bits, at_lambda = LAMBDA_AT
    return at_lambda * (max(bits_per_point, 1e-4) / at_bits) ** LAMBDA_SLOPE


def latent_step_for(bits_per_latent: float) -> float:
    """The quantization step the latents are fitted at when they may spend ``bits_per_latent`` each."""
    step = LATENT_STEP * 2.0 ** -min(max(bits_per_latent - BITS_PER_LATENT_AT_STEP, 0.0), 4.0)
    return float(f"{step:.4g}")  # as the bundle's metadata will hold it


# a PSNR target: lambda starts here (bikes' 29 dB took ~0.05, Bach's 41 dB ~0.001), and the latents are fitted
# at LATENT_STEP up to PSNR_AT_STEP dB, halved for every 6 dB more (down to a 16th)
PSNR_LAMBDA_START, PSNR_AT_STEP = 0.01, 35.0
# a size target: the fit steers the latents to this share of their bytes (the fits at step 0.2 ended 5-10 %
# over: 5 of 12 in docs/rate-term.md), and the fitted step is kept while the bundle is within this much of
# the target, since a step even 1 % coarser than the one the latents were rounded to in training rescales
# every symbol (bikes at 16 KB: 29.17 dB searched to step 0.2023, 29.48 dB kept at 0.2, 2 % more bytes)
STEER_AIM, KEEP_STEP_WITHIN = 0.96, 0.08
PSNR_STEP_MARGIN = 0.15  # dB over the target the probe must score at the stored step: it is a sample (2 s of
# bikes: 0.05 dB over on the probe was 0.05 under on the whole clip)


def latent_step_for_psnr(psnr: float) -> float:
    """The quantization step the latents are fitted at for a target of ``psnr`` dB."""
    step = LATENT_STEP * 2.0 ** -min(max(psnr - PSNR_AT_STEP, 0.0) / 6.0, 4.0)
    return float(f"{step:.4g}")


class SteeredRate:
    """A size or PSNR target met by the rate term. For a size, the latents' share of the bytes becomes the
    bits the fit steers lambda to (:meth:`term`), and after the fit the latents' step is searched if the coded
    streams still miss (:meth:`finish`); for a PSNR, the fit steers lambda by a probe's PSNR of the field with
    its latents rounded, and after it the coarsest step that still keeps the target is searched on ``probe``.
    The backbone keeps the default depth."""

    def __init__(self, target: Target, meta: dict, n_points: int, bits: BitDepths, probe: PsnrProbe | None = None):
        self.target, self.meta, self.n_points, self.bits, self.probe = target, meta, n_points, bits, probe
        self.fitted_step: float = LATENT_STEP  # the step the latents are fitted at (:meth:`term`)
        self.step: float = LATENT_STEP  # ... and stored at (:meth:`finish`)
        self.lam: float | None = None  # where the fit left lambda
        self.floor = 0  # the bytes of all but the latents, from a trial bundle
        self.contexts: dict | None = None  # the learned contexts the step search codes under (:meth:`coded`)
        self.notes: list[str] = []

    def term(self, field_: NeoMLPField) -> RateTerm:
        """The rate term of the fit: for a size, the target less the side information and the backbone's
        stream (both from a trial bundle of the fresh field), as the latents' bits; for a PSNR, a start for
        lambda that a probe steers (no trial bundle: the bytes do not enter it)."""
        if self.target.psnr is not None:
            self.fitted_step = self.step = latent_step_for_psnr(self.target.psnr)
            return RateTerm(PSNR_LAMBDA_START, self.fitted_step, target_psnr=self.target.psnr)
        quantized, draft = self.trial(field_, LATENT_STEP, {})  # a fresh field's latents: no context to learn
        side = bundle_io.stored_bytes(draft)["side"] + SIDE_MARGIN
        self.floor = side + streams.coded_bytes(quantized, {}).get("backbone", 0)
        latent_bits = max(8.0 * (self.target.bytes - self.floor) * STEER_AIM, 8.0)
        self.fitted_step = self.step = latent_step_for(latent_bits / field_.latents.table.numel())
        return RateTerm(lambda_for(latent_bits / self.n_points), self.fitted_step, target_bits=latent_bits)

    def to_dict(self) -> dict:
        """What a checkpoint records of it. Nothing needs restoring: the term comes again from the fresh
        field, and lambda and the scales travel in the fit's state."""
        return {"bits": {"backbone": self.bits.backbone}, "floor": self.floor, "steered": True}

    def trial(self, field_: NeoMLPField, step: float, contexts: dict | None = None,
              quantized: dict | None = None) -> tuple[dict, bytes]:
        """The field's symbols with the latents at ``step`` (``quantized``, where already at hand), and the
        bundle of them (but for the fit and quality record, which come later), under ``contexts`` (None:
        learned for these symbols)."""
        if quantized is None:
            quantized = bundle_io.quantize_state(field_, self.bits, step)
        meta = {**self.meta, "quantization": {"bits": {"backbone": self.bits.backbone}, "lambda": 1.0,
                                              "latent_step": step}}
        return quantized, bundle_io.pack(field_, meta, quantized, contexts)

    def coded(self, field_: NeoMLPField, step: float) -> int:
        """The bundle's bytes with the latents at ``step``, the fit and quality record at its margin; under the
        learned contexts of the fitted step's symbols (learned once: a search tries up to 17 steps)."""
        quantized = bundle_io.quantize_state(field_, self.bits, step)
        if self.contexts is None:
            fitted = quantized if step == self.fitted_step else \
                bundle_io.quantize_state(field_, self.bits, self.fitted_step)
            self.contexts = streams.learned_contexts(fitted)
        return len(self.trial(field_, step, self.contexts, quantized)[1]) + SIDE_MARGIN

    def finish(self, field_: NeoMLPField, lam: float | None) -> float:
        """The step to store the latents at: the one they were fitted for, unless that misses the size by
        more than :data:`KEEP_STEP_WITHIN`; then the step whose bytes come nearest the target from below (the
        bytes fall as the step grows), a bisection on its log."""
        self.lam = lam
        if self.target.bytes is None:
            return self.finish_psnr(field_)
        size = self.coded(field_, self.fitted_step)
        if abs(size / self.target.bytes - 1) <= KEEP_STEP_WITHIN:
            return self.fitted_step
        lo, hi = (self.fitted_step * f for f in STEP_SEARCH)  # coded(lo) is over the target, coded(hi) under
        for _ in range(16):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if self.coded(field_, mid) > self.target.bytes else (lo, mid)
        self.step = float(f"{hi:.4g}")
        self.notes.append(f"the fit left the latents at {size:,} bytes: stored at step {self.step:g}, not "
                          f"{self.fitted_step:g}")
        return self.step

    def finish_psnr(self, field_: NeoMLPField) -> float:
        """The coarsest step (up to :data:`STEP_SEARCH`'s 8x) whose field still scores the target plus
        :data:`PSNR_STEP_MARGIN` on the probe: the fit ends over its target, because its finetuning phase
        adapts the field to rounded latents after lambda last had time to act (2 s of bikes: +0.5 dB), and a
        coarser step spends that on bytes."""
        if self.probe is None:
            return self.fitted_step
        goal = self.target.psnr + PSNR_STEP_MARGIN
        state = {k: v.clone() for k, v in field_.state_dict().items()}

        def scored(step: float) -> float:
            return quantized_psnr(field_, self.probe, self.bits, step, state)

        if scored(self.fitted_step) < goal:
            return self.fitted_step
        lo, hi = self.fitted_step, self.fitted_step * STEP_SEARCH[1]  # scored(lo) meets the goal
        if scored(hi) >= goal:
            lo = hi
        else:
            for _ in range(12):
                mid = math.sqrt(lo * hi)
                lo, hi = (mid, hi) if scored(mid) >= goal else (lo, mid)
        self.step = float(f"{lo:.4g}")
        if scored(self.step) < goal:  # its 4 digits rounded it up past the goal
            self.step = self.fitted_step
        if self.step != self.fitted_step:
            self.notes.append(f"the fit ended over the target: latents stored at step {self.step:g}, not "
                              f"{self.fitted_step:g}")
        return self.step

    def outcome(self, nbytes: int, quality: dict, width: int | None) -> dict:
        out = {"asked": self.target.describe(), "bytes": nbytes, "bits": {"backbone": self.bits.backbone},
               "width": width, "lambda": float(f"{self.lam:.4g}") if self.lam is not None else None,
               "latent_step": self.step, "fitted_step": self.fitted_step, "notes": list(self.notes)}
        if self.target.bytes is None:
            reached = quality.get("video_psnr_db", quality.get("audio_psnr_db"))
            out["psnr"] = reached
            if reached is not None and reached < self.target.psnr:
                out["notes"].append(f"missed the PSNR target by {self.target.psnr - reached:.2f} dB: the fit "
                                    f"reached no more in this budget (lambda ended at {self.lam:.3g}): give it more "
                                    "--time-budget")
            return out
        off = nbytes / self.target.bytes - 1
        out["size_error"] = round(off, 4)
        if abs(off) > SIZE_TOLERANCE:
            why = (f"the metadata and the backbone alone take ~{self.floor:,} bytes" if off > 0 and
                   self.floor >= self.target.bytes * (1 - SIZE_TOLERANCE) else
                   f"the latents' step may move {STEP_SEARCH[0]:g}-{STEP_SEARCH[1]:g}x from {self.fitted_step:g}; a "
                   "longer --time-budget lets the fit steer lambda closer")
            out["notes"].append(f"missed the size by {off:+.0%}: {why}")
        return out
