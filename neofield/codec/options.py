"""Every option of an encode, as one frozen dataclass that checks itself.

An option is a field of :class:`EncodeOptions`. Its :class:`Flag` says how the command line names it and
whether it changes the fit; from the field follow

* the ``neofield encode`` flags, generated from it (:func:`neofield.console.option_flags`), and the ones
  ``neofield set fit`` shares;
* the Python API, ``neofield.encode(src, out, **kwargs)`` or ``encode(src, out, EncodeOptions(...))``;
* the checks (:meth:`EncodeOptions.check`), one line naming the flag, before any media is read;
* the checkpoint's fingerprint (:meth:`EncodeOptions.fingerprint`): a resume with another value of a
  flag that changes the fit is refused naming it;
* the fit's :class:`~neofield.fit.FitConfig`, and through it the fit record a bundle keeps
  (:func:`neofield.codec.encoder.fit_config`).

This module imports neither torch nor the media libraries, and neither does :meth:`EncodeOptions.check`
(but to look for a CUDA or Apple GPU asked for by name): ``neofield --help`` answers at once, and a bad
option fails in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import options as opt
from ..errors import NeofieldError
from ..fields.presets import ARCHS, ATTENTIONS, INTERPOLATIONS, PRESETS
from ..quantize import QUANTIZED, BitDepths, storage_bits

# Without --steps/--epochs/--time-budget an encode stops at whichever of these comes first: 20 epochs is where
# the shipped 1 s clip reaches ~35 dB (about 2 minutes on 2 cores); 5 minutes bounds a long or large clip,
# which then gets fewer epochs and the plan says so (docs/cpu-defaults.md).
DEFAULT_EPOCHS = 20.0
# A latent grid's step is cheap and moves only the nodes near its points, so it takes many more passes: 150
# epochs is about 2.5 minutes on the shipped clip (docs/field-designs.md)
GRID_EPOCHS = 150.0
DEFAULT_TIME_BUDGET = 300.0
MAX_SEGMENTS = 1_000_000
SIZED_ARCHS = ("neomlp", "neogrid", "grid")  # what rate control sizes: NeoMLP by width, the grids by parameters


@dataclass(frozen=True)
class Flag:
    """How the command line names an option. ``type`` is what it parses (``str`` for text that ``parse``
    turns into the API's value); ``fit`` is whether the value changes the fit, so that a checkpoint made
    with another one cannot be resumed."""

    name: str
    type: type
    help: str
    parse: Callable[[Any], Any] | None = None
    fit: bool = True
    short: str | None = None
    show_default: bool = True


def flag(default, name: str, type_: type, help: str, **kw):
    """A dataclass field whose metadata is its :class:`Flag`."""
    return field(default=default, metadata={"flag": Flag(name, type_, help, **kw)})


def _parse_sigma(text: str):
    return opt.parse_sigma(text)


@dataclass(frozen=True)
class EncodeOptions:
    """The options of ``neofield encode``, by the names the Python API gives them (see the module docstring).

    ``None`` means the default, which often depends on the signal (the preset's rate, one latent set per
    frame, the sound's own Fourier sigma): :func:`neofield.codec.encoder.resolve` fills those in once the
    media is read.
    """

    preset: str | None = flag(None, "--preset", str, f"Model size: {', '.join(PRESETS)} \\[default: tiny].")
    segments: int | None = flag(None, "--segments", int, "Latent sets along time \\[default: one per frame, or "
                                                         "per 1,024 audio samples].")
    steps: int | None = flag(None, "--steps", int, "Stop after this many steps.")
    epochs: float | None = flag(None, "--epochs", float, "Stop after this many passes over the points \\[default, "
                                f"with no other budget: {GRID_EPOCHS:g} for the latent-grid fields, "
                                f"{DEFAULT_EPOCHS:g} for the others, or {DEFAULT_TIME_BUDGET / 60:g} "
                                "minutes if that comes first].")
    time_budget: float | None = flag(None, "--time-budget", float, "Stop after this many seconds.")
    lr: float | None = flag(None, "--lr", float, "Peak learning rate \\[default: the preset's]; a neogrid fit "
                                "under a rate term planned past 3,000 steps starts lower, in proportion.")
    warmup_steps: int | None = flag(None, "--warmup", int, "Warm-up steps \\[default: the preset's].")
    batch_size: int | None = flag(None, "--batch-size", int, "Points per step \\[default: 1,024; 4,096 for the "
                                                             "latent-grid fields, neogrid and grid, and on a video "
                                                             "a 32nd of their parameters as a power of two, up to "
                                                             "65,536].")
    attention: str | None = flag(None, "--attention", str, "linear (Shen et al.) or softmax.")
    latents: str = flag("linear", "--latents", str, "linear: latent sets blend between their centres, so a "
                                                    "decode between frames interpolates; nearest: one set per slice.")
    rff_sigma: float | tuple[float, ...] | None = flag(
        None, "--rff-sigma", str, "Fourier-feature sigma: one value, or one per input (x,y,t) e.g. 1,1,60 "
                                  "\\[default: the preset's for pictures; for sound, its spectral centroid].",
        parse=_parse_sigma)
    audio_share: float | None = flag(None, "--audio-share", float, "Fraction of each batch drawn from the sound of "
                                                                   "a video with sound \\[default: 0.2 for the "
                                                                   "latent-grid fields, its share of points for "
                                                                   "the others].")
    weights_dtype: str = flag("quantized", "--dtype", str, "How weights are stored: quantized (range-coded symbols, "
                                                           "finetuned for them; a third of float16's bytes at the "
                                                           "same PSNR on the demo), or float16, bfloat16, float32.")
    bits: Any = flag(None, "--bits", float, "Bit depth of the backbone's weights (1-16; fractional depths are "
                                            "levels 2**bits) \\[default: 6]; on neogrid, the latents' too, in place "
                                            "of the default lambda.")  # or a BitDepths, from the API
    latent_bits: float | None = flag(None, "--latent-bits", float, "Bit depth of the latents \\[default: --bits].",
                                     fit=False)  # resolved into ``bits``, which the fingerprint holds
    size: int | str | None = flag(None, "--size", str, "Target bundle size, e.g. 20KB, 1.5MB (KB = 1000 bytes): "
                                                       "neogrid steers its rate term (lambda) to it, other fields "
                                                       "pick their width and bit depths.")
    bitrate: float | str | None = flag(None, "--bitrate", str, "Target bits per second of the piece, e.g. 300k: a "
                                                               "size target of bitrate x duration.")
    target_psnr: float | None = flag(None, "--psnr", float, "Target PSNR in dB (video PSNR, or audio PSNR for "
                                                            "sound): neogrid steers its rate term to keep it, "
                                                            "other fields take the lowest bit depth that does.")
    rate_lambda: float | None = flag(None, "--lambda", float, "Fit the latents for their own rate: the loss is MSE + "
                                                              "lambda x their bits per point (larger is smaller and "
                                                              "coarser), on a field as large as the time budget "
                                                              "trains; the latents are stored at a fixed step. "
                                                              "neogrid only \\[default, with no --size, --bitrate, "
                                                              "--psnr or --bits: 0.06 for pictures, 0.001 for "
                                                              "sound].")
    # the piece of the source (neofield.media.Selection): the command line's --start, --duration, --max-frames
    # and --resize, which `psnr` shares (neofield.console.PIECE_FLAGS); part of the source's fingerprint
    selection: Any = None
    seed: int = flag(0, "--seed", int, "Seed for initialisation and sampling.")
    device: str = flag("auto", "--device", str, "auto, cpu, cuda, cuda:N or mps.", fit=False)
    precision: str = flag("auto", "--precision", str, "Matmul precision while fitting: float32, bfloat16, or auto "
                                                      "(bfloat16 on CUDA and on CPUs with native bfloat16).")
    arch: str = flag("neogrid", "--arch", str, "Field: neogrid (latent pyramids over space and time read by a "
                                               "one-layer NeoMLP, ~1 k multiply-adds a pixel); neomlp (the paper's "
                                               "field: a latent set per frame, NeoMLP at every point, ~177 k); or a "
                                               "baseline with as many parameters as the NeoMLP preset: grid "
                                               "(pyramids and a 2 x 32 MLP), siren, spder, rffnet.")
    compile_mode: str = flag("auto", "--compile", str, "torch.compile the training step: on, off, or auto (on a "
                                                       "CPU when minutes of fitting are planned; needs a C++ "
                                                       "compiler).", fit=False)
    checkpoint_every: float | str | None = flag(
        "auto", "--checkpoint-every", str, "Write a checkpoint OUTPUT.ckpt this often while fitting: 60, 60s, 5m, "
                                           "or off \\[default: auto: every 60 s when the plan says the fit takes "
                                           "over 2 minutes, off for shorter fits]. Ctrl-C and SIGTERM always "
                                           "write one; it is removed once the bundle is written.",
        fit=False, show_default=False)
    resume: bool = flag(False, "--resume", bool, "Continue the fit from OUTPUT.ckpt (left by an interrupted "
                                                 "encode) instead of starting over; give the same options.", fit=False)
    save_on_interrupt: bool = flag(False, "--save-on-interrupt", bool, "On Ctrl-C or SIGTERM also write the bundle "
                                                                       "of the field as it is (best so far; the "
                                                                       "checkpoint is kept too).", fit=False)
    force: bool = flag(False, "--force", bool, "Overwrite the output if it exists.", fit=False, short="-y")
    evaluate: bool = True  # measure the stored field against the signal and record it (no flag)

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def of(cls, options: EncodeOptions | None = None, **kwargs) -> EncodeOptions:
        """``options`` with ``kwargs`` replaced (an unknown name is a TypeError, as for any function)."""
        base = options or cls()
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"encode() got an unexpected keyword argument {unknown[0]!r}")
        return dataclasses.replace(base, **kwargs)

    @classmethod
    def flags(cls, names: tuple[str, ...] | None = None) -> list[tuple[dataclasses.Field, Flag]]:
        """The fields that have a flag, in order (``names``: only those, in that order)."""
        found = {f.name: (f, f.metadata["flag"]) for f in dataclasses.fields(cls) if "flag" in f.metadata}
        return [found[n] for n in names] if names is not None else list(found.values())

    @classmethod
    def from_flags(cls, values: dict, **extra) -> EncodeOptions:
        """Options from the command line's values, by field name (text parsed where a flag says how)."""
        parsed = {}
        for f, fl in cls.flags(tuple(values)):
            value = values[f.name]
            parsed[f.name] = fl.parse(value) if fl.parse is not None and value is not None else value
        return cls(**parsed, **extra)

    # ---- checking -------------------------------------------------------------------------------
    def check(self) -> EncodeOptions:
        """Raise a one-line :class:`NeofieldError` naming the first bad option; return ``self`` if none is."""
        if self.preset is not None and self.preset not in PRESETS:
            raise NeofieldError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        opt.positive_int("--segments", self.segments, MAX_SEGMENTS)
        opt.positive_float("--lr", self.lr, maximum=10.0)
        opt.non_negative_int("--warmup", self.warmup_steps)
        opt.positive_int("--batch-size", self.batch_size, opt.MAX_BATCH)
        opt.positive_int("--steps", self.steps)
        opt.positive_float("--epochs", self.epochs)
        opt.positive_float("--time-budget", self.time_budget)
        opt.fraction("--audio-share", self.audio_share)
        opt.non_negative_int("--seed", self.seed)
        for name, value, choices in (("--attention", self.attention, ATTENTIONS),
                                     ("--latents", self.latents, INTERPOLATIONS)):
            if value is not None and value not in choices:
                raise NeofieldError(f"{name} must be {' or '.join(choices)}, not {value!r}")
        for name, value, choices in (("--precision", self.precision, opt.PRECISIONS), ("--arch", self.arch, ARCHS),
                                     ("--compile", self.compile_mode, opt.COMPILE_MODES)):
            if value not in choices:
                raise NeofieldError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        storage_bits(self.weights_dtype, self.depths())
        targets = self.targets()
        if len(targets) > 1:
            raise NeofieldError(f"give one target, not {' and '.join(targets)}")
        if targets and self.arch not in SIZED_ARCHS:
            raise NeofieldError(f"{targets[0]} sizes a NeoMLP or a latent-grid field; with --arch {self.arch}, "
                                "give --bits instead")
        if targets and self.weights_dtype != QUANTIZED:
            raise NeofieldError(f"{targets[0]} needs --dtype {QUANTIZED}: rate control sets the bit depths")
        if targets and self.depths() is not None:
            raise NeofieldError(f"{targets[0]} chooses the bit depths itself: leave out --bits")
        opt.positive_int("--size", opt.parse_bytes(self.size) if isinstance(self.size, str) else self.size)
        if isinstance(self.bitrate, str):
            opt.parse_bitrate(self.bitrate, 1.0)  # checked now, converted once the duration is known
        else:
            opt.positive_float("--bitrate", self.bitrate)
        opt.positive_float("--psnr", self.target_psnr, maximum=200.0)
        if opt.non_negative_float("--lambda", self.rate_lambda) is not None:
            if targets:
                raise NeofieldError(f"give --lambda or {targets[0]}, not both (a size target on neogrid steers "
                                    "lambda itself)")
            if self.arch != "neogrid":
                raise NeofieldError(f"--lambda prices the latent pyramids of --arch neogrid, not --arch {self.arch}")
            if self.weights_dtype != QUANTIZED:
                raise NeofieldError(f"--lambda needs --dtype {QUANTIZED}: it prices the latents' symbols")
            if self.latent_bits is not None or (isinstance(self.bits, BitDepths) and self.bits.latents != self.bits.backbone):
                raise NeofieldError("--lambda stores the latents at a fixed step: leave out --latent-bits")
        for v in (self.rff_sigma if isinstance(self.rff_sigma, tuple) else (self.rff_sigma,)):
            opt.positive_float("--rff-sigma", v)
        if self.arch in ("neogrid", "grid"):  # options of the paper's field that a latent grid has no use for
            for name, value in (("--segments", self.segments), ("--attention", self.attention),
                                ("--rff-sigma", self.rff_sigma)):
                if value is not None:
                    raise NeofieldError(f"{name} sets the paper's field (--arch neomlp); --arch {self.arch} lays "
                                        "its latents as pyramids and takes no Fourier features")
        opt.check_device(self.device)
        if self.selection is not None:
            self.selection.check()
        return self

    def depths(self):
        """``--bits`` and ``--latent-bits`` as :class:`~neofield.quantize.BitDepths` (None: the default)."""
        if isinstance(self.bits, BitDepths):
            if self.latent_bits is not None:
                raise NeofieldError("give the latents' depth inside bits=BitDepths(...), not as latent_bits")
            return self.bits
        return opt.bit_depths(self.bits, self.latent_bits)

    def targets(self) -> list[str]:
        """The rate-control targets given: ``--size``, ``--bitrate``, ``--psnr``."""
        return [name for name, v in (("--size", self.size), ("--bitrate", self.bitrate),
                                     ("--psnr", self.target_psnr)) if v is not None]

    # ---- what follows from them -------------------------------------------------------------------
    @property
    def default_budget(self) -> bool:
        """No stopping rule was given: the fit stops at ``DEFAULT_EPOCHS`` or ``DEFAULT_TIME_BUDGET``."""
        return self.steps is None and self.epochs is None and self.time_budget is None

    def budget(self) -> dict:
        """The stopping rules of the fit: the user's, or the default when none is given."""
        if self.default_budget:
            epochs = GRID_EPOCHS if self.arch in ("neogrid", "grid") else DEFAULT_EPOCHS
            return {"steps": None, "epochs": epochs, "time_budget": DEFAULT_TIME_BUDGET, "default": True}
        return {"steps": self.steps, "epochs": self.epochs, "time_budget": self.time_budget, "default": False}

    def fingerprint(self) -> dict:
        """Every option that changes the fit, by its flag, as plain JSON (what a checkpoint holds): taken of
        the options :func:`~neofield.codec.encoder.resolve` made for the signal, so that a default and the
        same value given outright agree."""
        out = {}
        for f, fl in self.flags():
            if fl.fit:
                value = getattr(self, f.name)
                out[fl.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return json.loads(json.dumps(out, default=float))


def check_decode_options(scale: float, scale_time: float | None, scale_rate: float | None,
                         size: tuple[int, int] | None, fps: float | None, sample_rate: int | None,
                         start: float | None, end: float | None, frame: float | None, crf: float | None,
                         crop: tuple[int, int, int, int] | None = None, compile_mode: str = "auto",
                         between: str = "blend") -> None:
    """A decode's numbers and names, checked before a bundle is read: a pure function that imports no torch,
    so that the command runs it first and a mistyped option answers at once."""
    opt.positive_float("--scale", scale, maximum=64.0)
    opt.positive_float("--scale-time", scale_time, maximum=64.0)
    opt.positive_float("--scale-rate", scale_rate, maximum=64.0)
    if size is not None:
        opt.check_size("--size", size)
    opt.positive_float("--fps", fps, maximum=opt.MAX_FPS)
    opt.positive_int("--sample-rate", sample_rate, opt.MAX_SAMPLE_RATE)
    opt.non_negative_float("--start", start)
    opt.non_negative_float("--end", end)
    opt.non_negative_float("--frame", frame)
    opt.non_negative_float("--crf", crf)
    if crop is not None and not (len(crop) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in crop)):
        raise NeofieldError(f"--crop must be four whole numbers X,Y,W,H, not {crop!r}")
    if compile_mode not in opt.COMPILE_MODES:
        raise NeofieldError(f"--compile must be one of {', '.join(opt.COMPILE_MODES)}, not {compile_mode!r}")
    if between not in opt.BETWEEN:
        raise NeofieldError(f"--between must be one of {', '.join(opt.BETWEEN)}, not {between!r}")
