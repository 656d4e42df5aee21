"""Fitting a nu-set: Algorithm 1 (backbone + latents on a dataset) and Algorithm 2 (new latents, backbone frozen).

Both are the codec's own fit loop (:func:`neofield.fit.fit`) on a
:class:`~.signals.SetSignal`: the same schedule, time budgets, bfloat16,
compile, rollback and progress reports. What differs is the field (a
:class:`~.field.SetField`, whose latent index rides on the coordinates) and,
for Algorithm 2, that only a fresh latent table learns; many signals are
fitted at once, ``chunk`` items per fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from .. import __version__, distributed
from .. import bundle as bundle_io
from .. import options as opt
from ..errors import NeofieldError
from ..fields.layouts import TimeSegments
from ..fields.neomlp import NeoMLPField
from ..fields.presets import PRESETS, build_config
from ..files import atomic_output
from ..fit import FitConfig, FitProgress, FitResult, fit
from ..quantize import BitDepths, QuantizedTensor
from ..signal import ValueMap, audio_rff_sigma
from .data import SignalSet
from .field import LATENT_OPTIMIZERS, SetField
from .signals import MAX_ID, SetSignal, item_psnr

RENDER_POINTS = 1 << 16  # points evaluated at once when measuring items
DEFAULT_CHUNK = 4096  # items whose latents Algorithm 2 fits together
DEFAULT_EPOCHS = 40.0  # Algorithm 1's passes over every point of every signal, when no budget is given
# The latent table learns at 10x the backbone's rate: each set sees a few points per step (digits, 20 epochs:
# 25.18 against 24.12 dB at 1x, 24.53 at 2x the base rate with 10x; 30x lost 1 dB at 60 epochs)
DEFAULT_LATENT_LR_SCALE = 10.0
# Algorithm 2's steps per chunk ... Digits, 3 seeds of Algorithm 2 each: 95.5 % accuracy (95.3-95.7) at 150
# steps, 95.8 % (94.9-96.4) at 100 and 2.2 dB less, one seed at 300: 93.8 % though 4 dB more. Longer fits
# spend the latents on each picture's detail (docs/cpu-defaults.md)
DEFAULT_FINETUNE_STEPS = 150
DEFAULT_POINTS_PER_SIGNAL = 16  # ... each with this many points of every signal of the chunk
REPS_KEY = "neofield_reps"
LATENT_INITS = ("mean", "normal")  # Algorithm 2's start: the backbone's mean latent set, or N(0, 1e-3)


@dataclass
class SetReport:
    """What a set fit or a latent fit produced: ``psnr`` is measured on the weights as rounded for storage
    (``weights_dtype``, ``bits``; ``quantized``: the symbols a quantized bundle stores), which is what a
    decoder of the bundle gets."""

    field: SetField
    signal: SetSignal
    fit: list[FitResult]
    psnr: torch.Tensor  # (items,) dB
    config: FitConfig | None = None  # what the fit ran with (quantization-aware finetuning included)
    weights_dtype: str = "float32"
    bits: BitDepths | None = None
    quantized: dict[str, QuantizedTensor] | None = None

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.fit)

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.fit)

    @property
    def points_per_second(self) -> float:
        return sum(r.points_per_second * r.seconds for r in self.fit) / max(self.seconds, 1e-9)

    def summary(self) -> dict:
        p = self.psnr
        out = {"items": len(p), "mean_psnr_db": round(float(p.mean()), 3), "min_psnr_db": round(float(p.min()), 3),
               "steps": self.steps, "seconds": round(self.seconds, 2),
               "points_per_second": round(self.points_per_second, 1), "weights_dtype": self.weights_dtype}
        if self.bits is not None:
            out["bits"] = self.bits.to_dict()
        return out


def make_set_field(signal: SetSignal, preset: str = "tiny", seed: int = 0, latent_optimizer: str = "lazy",
                   latent_lr_scale: float = DEFAULT_LATENT_LR_SCALE, **overrides) -> SetField:
    """A fresh set field for ``signal``: the preset's backbone, latents N(0, 1e-3) for every item."""
    if preset not in PRESETS:
        raise NeofieldError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    kind = "audio" if signal.kind == "audio" else "video"
    if signal.kind == "audio" and overrides.get("rff_sigma") is None:  # the codec's rule: the sound's own spectrum
        overrides["rff_sigma"] = audio_rff_sigma(signal.data.values[0], int(signal.data.rate))
    config = build_config(preset, signal.coordinate_map.in_features, signal.out_features, kind=kind, seed=seed,
                          **overrides)
    lo, hi = signal.coordinate_map.time_span(signal.layout()["geometry"]["duration"])
    torch.manual_seed(seed)
    return SetField(config, TimeSegments(signal.items * signal.segments_per_item, lo, hi, interpolation="nearest"),
                    signal.segments_per_item, latent_optimizer, latent_lr_scale)


def describe_storage(weights_dtype: str, bits: BitDepths | None) -> str:
    if bits is None:
        return weights_dtype
    return f"quantized to {bits.backbone:g} bits (backbone) and {bits.latents:g} bits (latents)"


def fit_set(data: SignalSet, config: FitConfig, preset: str = "tiny", segments_per_item: int | None = None,
            latent_optimizer: str = "lazy", latent_lr_scale: float = DEFAULT_LATENT_LR_SCALE,
            callback: Callable[[FitProgress], None] | None = None, measure: bool = True,
            on_field: Callable[[SetField], None] | None = None, weights_dtype: str = "float32",
            bits: BitDepths | None = None) -> SetReport:
    """Algorithm 1: a backbone and one latent table, fitted together on (signal, point) pairs drawn i.i.d.
    across the whole dataset. ``on_field`` sees the fresh field before the fit starts.

    ``weights_dtype`` is how the bundle will store the weights (:data:`neofield.bundle.STORAGE_DTYPES`):
    as ``neofield encode`` does, a ``quantized`` fit finetunes its last steps at the stored levels
    (``bits``, the codec's default depths unless given; ``config.quantization`` when the caller set one),
    and every fit ends with the weights rounded to what is stored, before the items are measured.
    float32 (the default) keeps the weights as fitted.
    """
    bits = bundle_io.storage_bits(weights_dtype, bits)
    if latent_optimizer not in LATENT_OPTIMIZERS:
        raise NeofieldError(f"--latent-optimizer must be one of {', '.join(LATENT_OPTIMIZERS)}, "
                            f"not {latent_optimizer!r}")
    opt.positive_float("--latent-lr-scale", latent_lr_scale)
    opt.positive_int("--segments", segments_per_item, MAX_ID)
    if segments_per_item and data.kind == "image" and segments_per_item > 1:
        raise NeofieldError("a picture has one latent set: --segments applies to sounds and clips")
    signal = SetSignal(data, segments_per_item)
    field = make_set_field(signal, preset, config.seed, latent_optimizer, latent_lr_scale)
    if bits is not None and config.quantization is None:
        config = dataclasses.replace(config, quantization=bundle_io.quantization_aware(field, bits))
    if on_field:
        on_field(field)
    result = fit(field, signal, config, callback)
    field.cpu()
    symbols = bundle_io.round_weights(field, weights_dtype, bits)  # measured below as any decoder will compute it
    psnr = measure_items(field, signal) if measure else torch.full((signal.items,), float("nan"))
    return SetReport(field, signal, [result], psnr, config, weights_dtype, bits, symbols)


def fit_latents(backbone: NeoMLPField, layout: dict, data: SignalSet, config: FitConfig,
                segments_per_item: int | None = None, chunk: int = DEFAULT_CHUNK,
                points_per_signal: int = DEFAULT_POINTS_PER_SIGNAL, init: str = "mean",
                callback: Callable[[int, int, FitProgress], None] | None = None) -> SetReport:
    """Algorithm 2: fresh latents for every signal of ``data``, fitted with ``backbone`` frozen, ``chunk``
    signals at a time.

    ``init="mean"`` starts every signal from the mean of the backbone's own latent table (per latent set
    of a signal); ``"normal"`` from N(0, 1e-3) as the paper does. The backbone treats its hidden tokens
    as a set, so from N(0, 1e-3) each signal's tokens settle in an order of their own and their
    flattened values are poor features; one common start keeps one order for all (digits: 93 % against
    81 % accuracy, and +3.5 dB, docs/cpu-defaults.md).

    Each step takes ``points_per_signal`` random points of every signal of the chunk (``config.batch_size``
    is ignored), so that every signal's latents get the same steps, equally noisy, whether it is fitted
    with 10 others or 10,000: the features of a training set and of a test set then come from one
    procedure. ``config``'s steps (or time budget) count per chunk.

    ``layout`` is the backbone's set layout: ``data`` must have its grid, and is scaled with its values
    (a set of sounds keeps the training set's scale). ``callback(first_item, items, progress)``.

    Under torchrun the chunks are shared out among the processes (a signal's latents need no other's),
    and every process ends with all of them.
    """
    check_compatible(layout, data)
    if config.epochs is not None:
        raise ValueError("fit_latents counts steps (each covers every signal), not epochs")
    if init not in LATENT_INITS:
        raise NeofieldError(f"--init must be one of {', '.join(LATENT_INITS)}, not {init!r}")
    opt.positive_int("--chunk", chunk)
    opt.positive_int("--points", points_per_signal)
    value_map = ValueMap(**next(iter(layout["values"].values())))
    whole = SetSignal(data, segments_per_item, value_map)
    world = distributed.world()
    if not world.main:
        callback = None
    chunk = process_chunk(len(data), chunk, world.size)
    start = _latent_start(backbone, whole.segments_per_item) if init == "mean" else None
    mine = []
    for first in range(0, len(data), chunk)[world.rank::world.size]:
        part = SetSignal(data.subset(slice(first, first + chunk)), whole.segments_per_item, value_map,
                         balanced=True)
        field = with_backbone(backbone, part, latent_optimizer="adam")  # every row is touched every step
        field.freeze_backbone()
        with torch.no_grad():
            if start is None:
                torch.manual_seed(config.seed + first)
                field.latents.table.normal_(0, 1e-3 ** 0.5)
            else:
                field.latents.table.copy_(start.repeat(part.items, 1, 1))
        progress = (lambda p, first=first, n=part.items: callback(first, n, p)) if callback else None
        result = fit(field, part, dataclasses.replace(config, batch_size=part.items * points_per_signal), progress,
                     parallel=False)
        mine.append((first, field.latents.table.detach().cpu(), measure_items(field, part), result))
    parts = sorted(distributed.all_gather(mine), key=lambda c: c[0])
    field = with_backbone(backbone, whole)
    with torch.no_grad():
        field.latents.table.copy_(torch.cat([c[1] for c in parts]))
    field.eval()
    return SetReport(field, whole, [c[3] for c in parts], torch.cat([c[2] for c in parts]), config)


def process_chunk(items: int, chunk: int, processes: int) -> int:
    """The signals Algorithm 2 fits together: at most ``chunk``, and few enough that every process gets work."""
    return min(chunk, -(-items // processes))


def _latent_start(backbone: NeoMLPField, segments_per_item: int) -> torch.Tensor:
    """The mean latent set of ``backbone``'s table at each of a signal's positions: (segments, tokens, D)."""
    table = backbone.latents.table.detach().cpu()
    if len(table) % segments_per_item:
        raise NeofieldError(f"the backbone's latent table ({len(table):,} sets) does not hold whole signals of "
                            f"{segments_per_item} sets")
    return table.reshape(-1, segments_per_item, *table.shape[1:]).mean(0)


def with_backbone(backbone: NeoMLPField, signal: SetSignal, latent_optimizer: str = "lazy") -> SetField:
    """A set field for ``signal``'s items over a copy of ``backbone`` (its latents still to be set)."""
    seg = backbone.layout
    field = SetField(backbone.config, TimeSegments(signal.items * signal.segments_per_item, seg.t_start, seg.t_end,
                                                   seg.time_index, "nearest"),
                     signal.segments_per_item, latent_optimizer)
    field.backbone.load_state_dict(backbone.backbone.state_dict())
    return field


def check_compatible(layout: dict, data: SignalSet) -> None:
    """``data`` must be signals of the grid the backbone was fitted on."""
    probe = SetSignal(data.subset(slice(0, 1)))
    mine, theirs = probe.layout(), layout
    if mine["modality"] != theirs["modality"]:
        raise NeofieldError(f"the backbone was fitted on {theirs['modality']}, not {mine['modality']}")
    for stream in ("video", "audio"):
        a, b = mine["geometry"].get(stream), theirs["geometry"].get(stream)
        if a and b:
            keys = ("width", "height", "frames", "fps", "channels") if stream == "video" else \
                ("sample_rate", "channels", "samples")
            diff = [k for k in keys if a.get(k) != b.get(k)]
            if diff:
                raise NeofieldError(f"these signals do not have the backbone's grid ({', '.join(diff)}: "
                                    f"{', '.join(str(a.get(k)) for k in diff)} against "
                                    f"{', '.join(str(b.get(k)) for k in diff)})")


@torch.no_grad()
def render_items(field: SetField, signal: SetSignal, items: torch.Tensor) -> torch.Tensor:
    """Raw values ``(n, P, C)`` of ``items`` on their own grid (float: pictures in 0..255, sound in [-1, 1])."""
    field.eval()
    p = signal.points_per_item
    out = torch.empty(len(items) * p, signal.channels)
    item = items.repeat_interleave(p)
    point = torch.arange(p).repeat(len(items))
    for s in range(0, len(item), RENDER_POINTS):
        sl = slice(s, s + RENDER_POINTS)
        out[sl] = field(signal.points(item[sl], point[sl])).float()
    return signal.value_map.to_raw(out.nan_to_num_(0.0)).view(len(items), p, signal.channels)


def measure_items(field: SetField, signal: SetSignal, batch_items: int | None = None) -> torch.Tensor:
    """PSNR of every item of the set (``item_psnr``)."""
    batch_items = batch_items or max(1, RENDER_POINTS // signal.points_per_item)
    out = []
    for first in range(0, signal.items, batch_items):
        items = torch.arange(first, min(first + batch_items, signal.items))
        out.append(item_psnr(render_items(field, signal, items), signal.values[items], signal.kind))
    return torch.cat(out)


# ---- files ------------------------------------------------------------------------
def set_metadata(report: SetReport, preset: str) -> dict:
    """A set bundle's metadata: one item's layout, the collection, how its weights are stored and the fit
    (see schema._collection)."""
    data = report.signal.data
    config, weights_dtype, bits = report.config, report.weights_dtype, report.bits
    collection = {"items": report.signal.items, "segments_per_item": report.signal.segments_per_item,
                  "names": list(data.names), "classes": list(data.classes)}
    if data.labels is not None:
        collection["labels"] = [int(v) for v in data.labels]
    fit_meta = {"steps": report.steps, "seconds": round(report.seconds, 3)}
    if config is not None:
        fit_meta["config"] = config.record()
    meta = {"neofield_version": __version__, **report.signal.layout(), "weights_dtype": weights_dtype,
            "preset": preset, "collection": collection,
            "source": {"name": data.source or "dataset", "selection": {}, "sha256": values_hash(data.values)},
            "fit": fit_meta,
            "quality": {"mean_psnr_db": round(float(report.psnr.mean()), 4),
                        "min_psnr_db": round(float(report.psnr.min()), 4)}}
    if bits is not None:
        meta["quantization"] = {"bits": bits.to_dict()}
    return meta


def values_hash(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def save_reps(path: str | Path, report: SetReport, backbone_name: str, force: bool = False) -> int:
    """The nu-reps: every signal's latents ``(N, sets, tokens, dim)``, its label and its PSNR, as plain
    safetensors (any tool reads them) with the names, classes and provenance in the metadata."""
    s = report.signal
    table = report.field.latents.table.detach().float()
    tensors = {"latents": table.view(s.items, s.segments_per_item, *table.shape[1:]).contiguous(),
               "psnr": report.psnr.float().contiguous()}
    if s.data.labels is not None:
        tensors["labels"] = torch.as_tensor(s.data.labels, dtype=torch.int64)
    meta = {"neofield_version": __version__, "backbone": backbone_name, "source": s.data.source,
            "names": list(s.data.names), "classes": list(s.data.classes), "fit": report.summary()}
    data = safetensors.torch.save(tensors, metadata={REPS_KEY: json.dumps(meta)})
    with atomic_output(Path(path), force=force) as tmp:
        tmp.write_bytes(data)
    return len(data)


@dataclass
class Reps:
    latents: torch.Tensor  # (N, sets, tokens, dim)
    labels: torch.Tensor | None
    psnr: torch.Tensor
    meta: dict = dataclass_field(default_factory=dict)

    @property
    def features(self) -> torch.Tensor:
        """The flattened latents a classifier reads."""
        return self.latents.flatten(1)


def load_reps(path: str | Path) -> Reps:
    """Read a file :func:`save_reps` wrote; one clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise NeofieldError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            meta = json.loads((f.metadata() or {}).get(REPS_KEY, "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise NeofieldError(f"{path} is not a safetensors file ({bundle_io._short(exc)})") from None
    if not isinstance(meta, dict) or "latents" not in tensors or "psnr" not in tensors:
        raise NeofieldError(f"{path} holds no nu-reps (write them with `neofield set encode`)")
    latents, labels = tensors["latents"].float(), tensors.get("labels")
    n = latents.shape[0]
    if latents.dim() != 4 or tensors["psnr"].shape != (n,) or (labels is not None and labels.shape != (n,)):
        raise NeofieldError(f"{path}: its tensors disagree on the number of signals")
    if not torch.isfinite(latents).all():
        raise NeofieldError(f"{path}: its latents are not all finite numbers")
    return Reps(latents, labels, tensors["psnr"], meta)


def save_set(path: str | Path, report: SetReport, preset: str = "tiny", force: bool = False) -> int:
    """The backbone and every item's latents as one ``.nf`` bundle (``neofield decode --item`` renders one),
    stored as the fit rounded them (:func:`fit_set`'s ``weights_dtype`` and ``bits``): the PSNR it measured,
    and the bundle records, is what a decoder gets."""
    return bundle_io.save(path, report.field, set_metadata(report, preset), force=force, quantized=report.quantized)


def load_set_bundle(path: str | Path, limits=None) -> tuple[SetField, dict]:
    """A set bundle's field (as a :class:`SetField`) and metadata."""
    b = bundle_io.load(path, limits) if limits else bundle_io.load(path)
    col = b.meta.get("collection")
    if col is None:
        raise NeofieldError(f"{path} is a single-signal bundle, not a set (write one with `neofield set fit`)")
    f = b.field
    field = SetField(f.config, f.layout, col["segments_per_item"])
    field.load_state_dict(f.state_dict())
    return field.eval(), b.meta
