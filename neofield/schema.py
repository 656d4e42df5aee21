"""The bundle's metadata schema: every ``.nf`` is checked against it before anything is allocated.

A bundle is untrusted input: people decode files that others send them. Its
metadata decides how large a model is built, how many latent sets are
allocated and what grid is rendered, so a few hostile numbers could make a
small file eat the machine. :func:`validate` checks types, ranges and the
fields' consistency with each other, and estimates the memory the model will
take, before :mod:`neofield.bundle` builds anything; every failure is one
line naming the file and the field.

The limits are far above anything neofield writes (the paper's video model
has 3.2 M parameters; a 2-hour 4K clip at one latent set per frame needs
~180 k sets), yet small enough that a hostile bundle cannot take more than
a few hundred MB. ``Limits.large()`` (``--allow-large`` on the command line)
raises them for a bundle one trusts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .errors import NeofieldError
from .fields import layouts
from .fields.attention import ATTENTION
from .fields.neomlp import ENCODINGS
from .fields.presets import NeoMLPConfig
from .fields.registry import ARCHS, LAYOUT_ARCHS, config_from_dict, config_keys, parameter_count
from .metadata import Checker, key_name
from .options import MAX_FPS, MAX_SAMPLE_RATE, MAX_SIDE, MIN_FPS

KINDS = ("video", "image", "audio", "audiovisual")
ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Limits:
    """What a bundle may ask for. Decoding checks its own grid against ``decode_points``."""

    payload_bytes: int = 64 << 20  # decompressed safetensors; neofield's bundles are KBs to a few MB
    parameters: int = 16_000_000  # backbone + latents, 64 MB in float32
    dim: int = 4096
    ffn_dim: int = 16384
    layers: int = 64
    rff_dim: int = 16384
    tokens: int = 256  # hidden + output tokens per set
    segments: int = 1_000_000
    duration: float = 7 * 24 * 3600.0  # seconds
    frames: int = 10_000_000
    audio_samples: int = 1 << 36
    channels: int = 64
    decode_points: int = 4_000_000_000  # field evaluations one decode may ask for (~5 h at 200 k points/s)
    decode_bytes: int = 2 << 30  # memory a decode may hold at once (one frame, or the whole sound)
    decode_seconds: float = 4 * 3600.0  # estimated at the speed probed on this machine

    @classmethod
    def large(cls) -> Limits:
        """``--allow-large``: sixteen times every size limit, for bundles one trusts."""
        base = cls()
        return cls(**{f.name: type(getattr(base, f.name))(getattr(base, f.name) * 16) for f in fields(cls)})


DEFAULT_LIMITS = Limits()


def validate(meta, name: str = "bundle", limits: Limits = DEFAULT_LIMITS, format_version: int | None = None) -> None:
    """Raise a one-line :class:`NeofieldError` unless ``meta`` is a bundle's metadata neofield can decode
    within ``limits``. Nothing is allocated: the model's size is computed from its configuration."""
    c = Checker(name, limits)
    if not isinstance(meta, dict):
        raise c.fail("", "must be an object", meta)
    kind = c.choice(meta, "modality", "modality", KINDS)
    c.text(meta, "neofield_version", "neofield_version", required=False)
    c.text(meta, "preset", "preset", required=False)
    c.choice(meta, "weights_dtype", "weights_dtype", ("quantized", "float16", "bfloat16", "float32", "q8"))
    geometry = _geometry(c, meta, kind)
    config = _model(c, meta)
    _layout(c, meta, kind, geometry, config)
    _source(c, meta, geometry)
    _records(c, meta)
    _collection(c, meta)


def _geometry(c: Checker, meta: dict, kind: str) -> dict:
    geo = c.obj(meta, "geometry", "geometry")
    lim = c.limits
    c.number(geo, "duration", "geometry.duration", hi=lim.duration, positive=True)
    video, audio = c.obj(geo, "video", "geometry.video", required=False), c.obj(geo, "audio", "geometry.audio",
                                                                                required=False)
    if (video is not None) != (kind != "audio"):
        raise c.fail("geometry.video", f"must be {'present' if kind != 'audio' else 'absent'} for {kind}", show=False)
    if (audio is not None) != (kind in ("audio", "audiovisual")):
        raise c.fail("geometry.audio", f"must be {'absent' if audio is not None else 'present'} for {kind}",
                     show=False)
    if video is not None:
        c.integer(video, "width", "geometry.video.width", 1, MAX_SIDE)
        c.integer(video, "height", "geometry.video.height", 1, MAX_SIDE)
        c.integer(video, "frames", "geometry.video.frames", 1, lim.frames)
        c.number(video, "fps", "geometry.video.fps", MIN_FPS, MAX_FPS)
        if c.flag(video, "still", "geometry.video.still") != (kind == "image"):
            raise c.fail("geometry.video.still", f"does not match the modality {kind}", video.get("still"))
        c.choice(video, "rotation", "geometry.video.rotation", ROTATIONS, required=False)
        c.choice(video, "channels", "geometry.video.channels", (1, 3), required=False)  # 1: gray (nu-sets of digits)
        c.flag(video, "vfr", "geometry.video.vfr")
        if "sample_aspect_ratio" in video:
            sar = video["sample_aspect_ratio"]
            if not (isinstance(sar, list) and len(sar) == 2 and all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535 for v in sar)):
                raise c.fail("geometry.video.sample_aspect_ratio", "must be two whole numbers from 1 to 65,535",
                             sar)
    if audio is not None:
        c.integer(audio, "sample_rate", "geometry.audio.sample_rate", 1, MAX_SAMPLE_RATE)
        c.integer(audio, "channels", "geometry.audio.channels", 1, lim.channels)
        c.integer(audio, "samples", "geometry.audio.samples", 1, lim.audio_samples)
    return geo


def _model(c: Checker, meta: dict):
    model = c.obj(meta, "model", "model")
    arch = c.choice(model, "type", "model.type", ARCHS, required=False, default="neomlp")
    cfg = c.obj(model, "config", "model.config")
    unknown = sorted(set(cfg) - config_keys(arch))
    if unknown:
        raise c.fail(f"model.config.{key_name(unknown[0])}", f"is not a {arch} setting this neofield knows", show=False)
    config = {"neomlp": _neomlp_config, "grid": _grid_config, "neogrid": _neogrid_config}.get(
        arch, lambda c, cfg: _mlp_config(c, cfg, arch))(c, cfg)
    layout = None
    if arch in LAYOUT_ARCHS:
        layout = _layout_entry(c, model, config, arch)
    elif "segmentation" in model:
        raise c.fail("model.segmentation", f"must be absent for {arch}: it has no latent sets", show=False)
    n = parameter_count(arch, config, layout)
    if n > c.limits.parameters:
        raise NeofieldError(f"{c.name}: the bundle's model has {n:,} parameters, more than the "
                            f"{c.limits.parameters:,} allowed (--allow-large raises the limit for a bundle you trust)")
    return config


def _sigma(c: Checker, cfg: dict, path: str, inputs: int):
    sigma = cfg.get("rff_sigma")
    sigmas = sigma if isinstance(sigma, list) else [sigma]
    if (isinstance(sigma, list) and len(sigma) != inputs) or not all(
            isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and 0 < s <= 1e6
            for s in sigmas):
        raise c.fail(path, f"must be a number in (0, 1e6] or a list of {inputs}", sigma)
    return tuple(sigma) if isinstance(sigma, list) else sigma


def _neomlp_config(c: Checker, cfg: dict) -> NeoMLPConfig:
    lim, p = c.limits, "model.config."
    i = c.integer(cfg, "in_features", p + "in_features", 1, 3)
    dim = c.integer(cfg, "dim", p + "dim", 1, lim.dim)
    heads = c.integer(cfg, "heads", p + "heads", 1, dim)
    if dim % heads:
        raise c.fail(p + "heads", f"must divide dim {dim}", heads)
    rff_dim = c.integer(cfg, "rff_dim", p + "rff_dim", 2, lim.rff_dim)
    if rff_dim % 2:
        raise c.fail(p + "rff_dim", "must be even (cos and sin halves)", rff_dim)
    config = NeoMLPConfig(
        dim=dim, ffn_dim=c.integer(cfg, "ffn_dim", p + "ffn_dim", 1, lim.ffn_dim), heads=heads,
        layers=c.integer(cfg, "layers", p + "layers", 1, lim.layers), rff_dim=rff_dim,
        rff_sigma=_sigma(c, cfg, p + "rff_sigma", i),
        hidden_tokens=c.integer(cfg, "hidden_tokens", p + "hidden_tokens", 0, lim.tokens),
        attention=c.choice(cfg, "attention", p + "attention", tuple(ATTENTION)), in_features=i,
        out_features=c.integer(cfg, "out_features", p + "out_features", 1, lim.tokens),
        seed=c.integer(cfg, "seed", p + "seed", 0, 2**32 - 1),  # numpy's RandomState takes 32-bit seeds
        encoding=c.choice(cfg, "encoding", p + "encoding", ENCODINGS, required=False, default="rff"))
    if config.hidden_tokens + config.out_features > lim.tokens:
        raise c.fail(p + "hidden_tokens", f"plus out_features must be at most {lim.tokens}",
                     config.hidden_tokens + config.out_features)
    return config


def _mlp_config(c: Checker, cfg: dict, arch: str):
    """SIREN, SPDER (``w0``) or the RFF-MLP (``rff_dim``, ``rff_sigma``, ``seed``)."""
    lim, p = c.limits, "model.config."
    i = c.integer(cfg, "in_features", p + "in_features", 1, 3)
    values = {"in_features": i, "out_features": c.integer(cfg, "out_features", p + "out_features", 1, lim.tokens),
              "width": c.integer(cfg, "width", p + "width", 1, lim.dim)}
    if arch == "rffnet":
        values["layers"] = c.integer(cfg, "layers", p + "layers", 1, lim.layers)
        values["rff_dim"] = c.integer(cfg, "rff_dim", p + "rff_dim", 2, lim.rff_dim)
        if values["rff_dim"] % 2:
            raise c.fail(p + "rff_dim", "must be even (cos and sin halves)", values["rff_dim"])
        values["rff_sigma"] = _sigma(c, cfg, p + "rff_sigma", i)
        values["seed"] = c.integer(cfg, "seed", p + "seed", 0, 2**32 - 1)
    else:
        values["layers"] = c.integer(cfg, "layers", p + "layers", 2, lim.layers)
        values["w0"] = c.number(cfg, "w0", p + "w0", hi=1e4, positive=True)
    return config_from_dict(arch, values)


def _ints(c: Checker, cfg: dict, key: str, path: str, count: int, hi: int) -> tuple[int, ...]:
    value = cfg.get(key)
    if not (isinstance(value, list) and len(value) == count and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= hi for v in value)):
        raise c.fail(path, f"must be a list of {count} whole numbers from 1 to {hi:,}", value)
    return tuple(value)


def _grid_config(c: Checker, cfg: dict):
    """``--arch grid``: the box its pyramids span, their sizes, and the heads."""
    lim, p = c.limits, "model.config."
    i = c.choice(cfg, "in_features", p + "in_features", (1, 3))
    out = c.integer(cfg, "out_features", p + "out_features", 1, lim.tokens)
    audio = c.integer(cfg, "audio_outputs", p + "audio_outputs", 0, out)
    box = {}
    for key in ("low", "high"):
        value = cfg.get(key)
        if not (isinstance(value, list) and len(value) == i and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= 1e9
                for v in value)):
            raise c.fail(p + key, f"must be a list of {i} finite numbers", value)
        box[key] = tuple(float(v) for v in value)
    if not all(h > lo for lo, h in zip(box["low"], box["high"])):
        raise c.fail(p + "high", "must lie above low on every axis", cfg.get("high"))
    values = {"in_features": i, "out_features": out, "audio_outputs": audio, **box,
              "width": c.integer(cfg, "width", p + "width", 1, lim.dim),
              "layers": c.integer(cfg, "layers", p + "layers", 1, lim.layers)}
    if out > audio:  # a picture pyramid, over (x, y, t)
        if i != 3:
            raise c.fail(p + "in_features", "must be 3 for a field with pictures", i)
        values["coarse"] = _ints(c, cfg, "coarse", p + "coarse", 3, max(MAX_SIDE, lim.frames))
        values["fine"] = _ints(c, cfg, "fine", p + "fine", 3, max(MAX_SIDE, lim.frames))
        values["levels"] = c.integer(cfg, "levels", p + "levels", 1, 32)
        values["channels"] = c.integer(cfg, "channels", p + "channels", 1, 64)
    if audio:
        for key in ("audio_coarse", "audio_fine"):
            values[key] = c.integer(cfg, key, p + key, 1, lim.audio_samples)
        values["audio_levels"] = c.integer(cfg, "audio_levels", p + "audio_levels", 1, 32)
        values["audio_channels"] = c.integer(cfg, "audio_channels", p + "audio_channels", 1, 64)
    return config_from_dict("grid", values)


LAYOUT_OF = {"neomlp": layouts.TimeSegments.type, "neogrid": layouts.PyramidLayout.type}


def _layout_entry(c: Checker, model: dict, config, arch: str) -> layouts.LatentLayout:
    """``model.segmentation``: the latent layout (its historic name), checked by the layout's own entry."""
    d = c.obj(model, "segmentation", "model.segmentation")
    kind = c.choice(d, "type", "model.segmentation.type", (LAYOUT_OF[arch],), required=False,
                    default=layouts.TimeSegments.type)
    rest = {k: v for k, v in d.items() if k != "type"}
    layouts.LAYOUTS[kind].check(c, rest, "model.segmentation", config.in_features)
    layout = layouts.from_dict(d)
    if arch == "neogrid" and (layout.tokens, layout.channels) != (config.tokens, config.channels):
        raise c.fail("model.config.tokens", f"and channels must be the layout's levels {layout.tokens} and "
                                            f"channels {layout.channels}", [config.tokens, config.channels])
    return layout


def _neogrid_config(c: Checker, cfg: dict):
    """NeoGrid: the lean NeoMLP that reads the pyramids (neofield.fields.neogrid)."""
    lim, p = c.limits, "model.config."
    dim = c.integer(cfg, "dim", p + "dim", 1, lim.dim)
    heads = c.integer(cfg, "heads", p + "heads", 1, dim)
    if dim % heads:
        raise c.fail(p + "heads", f"must divide dim {dim}", heads)
    return config_from_dict("neogrid", {
        "in_features": c.choice(cfg, "in_features", p + "in_features", (1, 3)),
        "out_features": c.integer(cfg, "out_features", p + "out_features", 1, lim.tokens),
        "tokens": c.integer(cfg, "tokens", p + "tokens", 1, 4 * 32),
        "channels": c.integer(cfg, "channels", p + "channels", 1, 64), "dim": dim, "heads": heads,
        "hidden_tokens": c.integer(cfg, "hidden_tokens", p + "hidden_tokens", 1, lim.tokens),
        "ffn_dim": c.integer(cfg, "ffn_dim", p + "ffn_dim", 0, lim.ffn_dim),
        "attention": c.choice(cfg, "attention", p + "attention", tuple(ATTENTION))})


def _layout(c: Checker, meta: dict, kind: str, geo: dict, config: NeoMLPConfig) -> None:
    coords = c.obj(meta, "coordinates", "coordinates")
    for axis in ("t", "x", "y"):
        spatial = axis != "t"
        present = isinstance(coords.get(axis), dict)
        if axis not in coords or coords[axis] is None:
            if not spatial or config.in_features == 3:
                raise c.fail(f"coordinates.{axis}", "is missing", show=False)
            continue
        if not present:
            raise c.fail(f"coordinates.{axis}", "must be an object", coords[axis])
        if spatial and config.in_features != 3:
            raise c.fail(f"coordinates.{axis}", "must be absent for a model with one input", show=False)
        c.number(coords[axis], "scale", f"coordinates.{axis}.scale", -1e9, 1e9)
        c.number(coords[axis], "offset", f"coordinates.{axis}.offset", -1e9, 1e9)
        if coords[axis]["scale"] == 0:
            raise c.fail(f"coordinates.{axis}.scale", "must not be 0", 0)
    if (kind == "audio") != (config.in_features == 1):
        raise c.fail("model.config.in_features", f"does not suit {kind}", config.in_features)
    values = c.obj(meta, "values", "values")
    outputs = c.obj(meta, "outputs", "outputs")
    streams = [s for s in ("video", "audio") if s in geo]
    for key in (set(values) | set(outputs)) - set(streams):
        raise c.fail(f"outputs.{key_name(key)}", f"is not a stream of this {kind} bundle", show=False)
    spans = []
    for stream in streams:
        v = c.obj(values, stream, f"values.{stream}")
        scale = c.number(v, "scale", f"values.{stream}.scale", -1e9, 1e9)
        c.number(v, "offset", f"values.{stream}.offset", -1e9, 1e9)
        if scale == 0:
            raise c.fail(f"values.{stream}.scale", "must not be 0", 0)
        span = outputs.get(stream)
        width = geo["video"].get("channels", 3) if stream == "video" else geo["audio"]["channels"]
        if not (isinstance(span, list) and len(span) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) for x in span)
                and 0 <= span[0] and span[1] - span[0] == width and span[1] <= config.out_features):
            raise c.fail(f"outputs.{stream}", f"must be [first, last) of {width} of the model's "
                                              f"{config.out_features} outputs", span)
        spans.append(span)
    if len(spans) == 2 and max(spans[0][0], spans[1][0]) < min(spans[0][1], spans[1][1]):
        raise c.fail("outputs", "video and audio share outputs", outputs)


def _source(c: Checker, meta: dict, geometry: dict) -> None:
    source = c.obj(meta, "source", "source")
    c.text(source, "name", "source.name")
    c.text(source, "sha256", "source.sha256")
    selection = c.obj(source, "selection", "source.selection")
    p = "source.selection."
    c.number(selection, "start", p + "start", 0, c.limits.duration, required=False)
    for key in ("duration",):
        if selection.get(key) is not None:
            c.number(selection, key, p + key, hi=c.limits.duration, positive=True)
    if selection.get("max_frames") is not None:
        c.integer(selection, "max_frames", p + "max_frames", 1, c.limits.frames)
    if selection.get("resize") is not None:
        size = selection["resize"]
        if not (isinstance(size, list) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in size)):
            raise c.fail(p + "resize", f"must be [width, height], each 1 to {MAX_SIDE}", size)
        video = geometry.get("video") or {}
        if size != [video.get("width"), video.get("height")]:  # psnr reads the original at this size
            raise c.fail(p + "resize", "must be the frame size in geometry.video", size)


def _records(c: Checker, meta: dict) -> None:
    """What ``info`` prints: the quality the encoder measured and the quantization depths."""
    quality = c.obj(meta, "quality", "quality", required=False) or {}
    for key, value in quality.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise c.fail(f"quality.{key_name(key)}", "must be a number", value)
    if meta.get("weights_dtype") == "quantized":
        q = c.obj(meta, "quantization", "quantization", required=False)
        if q is not None:
            bits = c.obj(q, "bits", "quantization.bits")
            for key in ("backbone", "latents"):
                c.number(bits, key, f"quantization.bits.{key}", 1, 16, required=False)
            c.number(q, "lambda", "quantization.lambda", 0, 1e9, required=False)
            c.number(q, "latent_step", "quantization.latent_step", 1e-9, 1e9, required=False)
    fit = c.obj(meta, "fit", "fit", required=False)
    if fit is not None:
        for key in ("steps",):
            if key in fit:
                c.integer(fit, key, f"fit.{key}", 0, 2**62)
        for key in ("seconds", "points_per_second"):
            if key in fit:
                c.number(fit, key, f"fit.{key}", 0)


def _collection(c: Checker, meta: dict) -> None:
    """A nu-set bundle (``neofield set fit``): ``items`` signals of one layout, ``segments_per_item`` latent
    sets each, stored one item after the other in the model's latent table."""
    col = c.obj(meta, "collection", "collection", required=False)
    if col is None:
        return
    if meta["model"].get("type", "neomlp") != "neomlp":
        raise c.fail("collection", "needs a NeoMLP: only it has latent sets", show=False)
    if layouts.layout_type(meta["model"]["segmentation"]) != layouts.TimeSegments.type:
        raise c.fail("collection", "needs latent sets in time segments, a run of them per signal", show=False)
    items = c.integer(col, "items", "collection.items", 1, c.limits.segments)
    per = c.integer(col, "segments_per_item", "collection.segments_per_item", 1, c.limits.segments)
    if items * per != meta["model"]["segmentation"]["segments"]:
        raise c.fail("collection.items", f"times segments_per_item {per} must be model.segmentation.segments", items)
    classes = col.get("classes", [])
    if not isinstance(classes, list) or len(classes) > c.limits.segments:
        raise c.fail("collection.classes", "must be a list of names", classes)
    for i, name in enumerate(classes):
        c.text_value(name, f"collection.classes[{i}]")
    for key in ("names", "labels"):
        values = col.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or len(values) != items:
            raise c.fail(f"collection.{key}", f"must be a list of {items:,}", values)
        for i, v in enumerate(values):
            if key == "names":
                c.text_value(v, f"collection.names[{i}]")
            elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(classes):
                raise c.fail(f"collection.labels[{i}]", f"must be a class index below {len(classes)}", v)
