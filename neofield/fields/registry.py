"""The neural fields a bundle can hold, by the name its metadata stores (``model.type``).

NeoMLP is the codec's model; SIREN, SPDER and the RFF-MLP are the NeoMLP
paper's baselines, stored, decoded and scored by the same code so that a user
can compare them on their own media (``neofield encode --arch``). Every field
has the same call convention (``forward(coords (B, I)) -> (B, O)``, a
``config`` dataclass, ``num_parameters()``); only NeoMLP has latent sets,
laid over the signal by its ``layout`` (:mod:`.layouts`).
"""

from __future__ import annotations

import math
from dataclasses import fields as dataclass_fields

import torch
from torch import nn

from . import layouts
from .baselines import RFFNet, RFFNetConfig, Siren, SirenConfig, Spder
from .gridmlp import GridConfig, GridField, grid_parameters
from .neogrid import NeoGridConfig, NeoGridField, layer_parameters
from .neomlp import NeoMLPField
from .presets import ARCHS, NeoMLPConfig  # noqa: F401  (ARCHS re-exported)

CONFIGS = {"neomlp": NeoMLPConfig, "siren": SirenConfig, "spder": SirenConfig, "rffnet": RFFNetConfig,
           "grid": GridConfig, "neogrid": NeoGridConfig}
LAYOUT_ARCHS = ("neomlp", "neogrid")  # the fields whose latents a layout lays over the signal (model.segmentation)


def arch_of(field: nn.Module) -> str:
    """The name a bundle stores for ``field``'s architecture."""
    for arch, cls in (("neomlp", NeoMLPField), ("spder", Spder), ("siren", Siren), ("rffnet", RFFNet),
                      ("grid", GridField), ("neogrid", NeoGridField)):
        if isinstance(field, cls):  # Spder before Siren: it is one
            return arch
    raise TypeError(f"{type(field).__name__} is not a field neofield can store")


def config_from_dict(arch: str, d: dict):
    """The architecture's config dataclass from its stored dict (JSON lists back to tuples)."""
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return CONFIGS[arch](**d)


def config_keys(arch: str) -> set[str]:
    return {f.name for f in dataclass_fields(CONFIGS[arch])}


def build(arch: str, config, layout: dict | None = None) -> nn.Module:
    """A fresh field of ``arch`` (weights to be loaded); NeoMLP takes its latent layout's metadata."""
    if arch == "neomlp":
        return NeoMLPField(config, layouts.from_dict(layout))
    if arch == "neogrid":
        return NeoGridField(config, layouts.from_dict(layout))
    return {"siren": Siren, "spder": Spder, "rffnet": RFFNet, "grid": GridField}[arch](config)


def parameter_count(arch: str, config, layout: layouts.LatentLayout | None = None) -> int:
    """Parameters of the field ``build`` would make, computed without building it (tested against the
    models): what a bundle's configuration would make a decoder allocate."""
    if arch == "neomlp":
        d, f = config.dim, config.ffn_dim
        block = 3 * d * d + (d * d + d) + (d * f + f) + (f * d + d)  # qkv (no bias), out, FFN in and out
        encoding = config.rff_dim * d + d if config.encoding == "rff" else config.in_features * d
        backbone = encoding + config.in_features * d + config.layers * block + (d + 1)
        tokens = config.hidden_tokens + config.out_features
        return backbone + (layout or layouts.TimeSegments()).num_parameters(tokens, d)
    if arch == "grid":
        return grid_parameters(config)
    if arch == "neogrid":
        return layer_parameters(config) + (layout.num_parameters(1, config.channels) if layout is not None else 0)
    # an MLP of `layers` linear layers: first -> width, (layers - 2) x width -> width, width -> outputs
    w, o = config.width, config.out_features
    first = config.in_features if arch in ("siren", "spder") else config.rff_dim
    if config.layers == 1:  # an RFF-MLP may be its read-out alone
        return (first + 1) * o
    return (first + 1) * w + (config.layers - 2) * (w + 1) * w + (w + 1) * o


# The baselines' rates, measured on our clips (benchmarks/equal_time.py's sweep): SIREN 3e-4 with no warm-up
# (1e-3 broke on sound); SPDER shares SIREN's network and initialisation; the RFF-MLP 1e-3 after 50 warm-up
# steps, best of 1e-3 and 3e-3 at 30 s on all three signals (docs/cpu-defaults.md, "The paper's Table 1").
RATES = {"siren": (3e-4, 0), "spder": (3e-4, 0), "rffnet": (3e-3, 50), "grid": (1e-2, 20), "neogrid": (1e-2, 20)}
# The steps a rate was chosen at, where a longer fit takes a lower one (schedule.peak_lr): a latent grid priced by
# a rate term. At 1e-2, 600 s on 2 s of bikes (~13,000 steps) ended at a worse MSE + lambda * bits than 120 s
# (~2,300); at a quarter of the rate ahead of it (docs/rate-term.md, "A learning rate that falls with the steps")
LR_STEPS = {"neogrid": 3000}
# Adam's beta2 where not torch's 0.999: a latent grid's node is in a step's batch now and then, and an average of
# its squared gradients over ~100 steps, not ~1,000, follows its own scale sooner (Instant-NGP's 0.99). At a fixed
# 3,000 steps on 2 s of bikes: -3.6 % BD-rate over 30.1-35.3 dB, +0.53 dB at lambda 0.003 for 6.8 % more bytes
# (docs/rate-term.md, "Adam's memory")
ADAM_BETA2 = {"grid": 0.99, "neogrid": 0.99}
# Points per step where not 1,024: a latent grid's step is cheap and moves only the nodes near its points, so
# larger batches pay (benchmarks/prototypes.py: 4,096 beat 16,384 at equal time on bikes, 29.41 against 28.81 dB)
BATCHES = {"grid": 4096, "neogrid": 4096}
# ... and for a video, more as its latent grid grows: a step costs ~45 ns a parameter (Adam over every node, the
# rate term) plus ~1.1 us a point (bikes.mp4 on 2 cores: 1.02 M parameters took 48 ms a step at 4,096 points and
# 115 ms at 65,536; 65 k took 7.8 and 74 ms), so a batch of a 32nd of the parameters spends about as long on its
# points as on the nodes it moves. At lambda 0.06: the whole of bikes, 300 s, 1.02 M parameters: 28.66 dB at
# 32,768 points a step against 27.11 at 4,096, the same bytes; 2 s of bikes, 120 s, 354 k: level at 16,384
# (30.18 dB both). Sound keeps 4,096, as does video with sound: Bach at 8,192 lost 0.48 dB for 13 % more bytes,
# and Big Buck Bunny with sound was level (docs/field-designs.md, "A long clip")
POINTS_PER_PARAMETER, MAX_BATCH, GROWING_BATCH_KINDS = 1 / 32, 65_536, ("video",)


def batch_for(arch: str, kind: str, parameters: int, default: int) -> int:
    """Points per step for a field of ``arch`` with ``parameters`` parameters over a signal of ``kind``
    (``default`` where the arch has no rule of its own): for a latent grid over a video, the power of two at or
    above ``POINTS_PER_PARAMETER`` of them, within ``BATCHES[arch]`` and ``MAX_BATCH``."""
    if arch not in BATCHES:
        return default
    if kind not in GROWING_BATCH_KINDS:
        return BATCHES[arch]
    want = max(1, math.ceil(parameters * POINTS_PER_PARAMETER))
    return min(max(BATCHES[arch], 1 << (want - 1).bit_length()), MAX_BATCH)


# NeoGrid's hidden tokens, by the kind of signal. Where there is sound, 8: a step learns far more with them (Bach,
# 6,000 steps: 44.10 dB against 41.15 with 2), and training's fused layer (neogrid.LeanNeoMLP.fused) makes them pay
# at equal time: 120 s on 2 cores, Bach 46.01 dB against 44.91 for --arch grid (2 hidden tokens: 0.56 dB behind
# it), Big Buck Bunny with sound 26.93 / 66.16 against 26.54 / 65.71. Pictures alone keep 2: 8 gain 0.2-0.5 dB
# on a small field and nothing on the rate term's large ones (2.5 s of bikes, 120 s: 30.43 against 30.38 dB, the
# same bytes), for 1.45x the decode's time at 720p and 2.3x an epoch-bound fit's (docs/field-designs.md)
HIDDEN_TOKENS = {"video": 2, "image": 2, "audio": 8, "audiovisual": 8}
# The picture pyramid's finest levels read at taps (fields.pyramid.Pyramid.taps), by the kind of signal: on 2 s of
# bikes, one tapped level gave +0.64 to +0.86 dB at 2.4-2.9 % fewer bytes at lambda 0.003 (three fits of four; the
# fourth +0.2), on Big Buck Bunny with sound +0.78 dB for 3.3 % more bytes (docs/rate-term.md, "Taps")
PICTURE_TAPS = {"video": 1, "image": 1, "audio": 0, "audiovisual": 1}
# The share of a video-with-sound batch drawn from the sound, where not its share of the points (~3 % on Big Buck
# Bunny): a sound's pyramid nodes are few and far apart in the batch, and at 3 % they stayed at silence (SNR
# -0.08 dB after 120 s; at 20 %, with 20 % of the parameters, +5.64 dB at -0.2 dB of video: docs/field-designs.md)
GRID_AUDIO_SHARE = {"grid": 0.2, "neogrid": 0.2}
# The RFF-MLP's frequencies (cycles per field unit): (x, y, t) for pictures, t for sound (equal_time.py's sweep).
# A sound's time axis takes the sound's own spectral sigma where it is known (rffnet_sigma), as NeoMLP's does.
RFFNET_SIGMA = {"video": (2.0, 2.0, 1.0), "image": (2.0, 2.0, 1.0), "audio": 20.0, "audiovisual": (2.0, 2.0, 20.0)}
SIREN_LAYERS, RFFNET_LAYERS, RFFNET_FEATURES = 5, 4, 256
# What "--precision auto" means per architecture where it is not the codec's bfloat16: a sine network multiplies
# every pre-activation by w0 = 30, and bfloat16's ~3 significant digits would put its phases off by ~0.1 rad.
# NeoGrid's small matrices run faster in float32 than under bfloat16 autocast on our CPUs (261 k against 246 k
# points/s on bikes, 687 k against 416 k on Bach: the casts and bfloat16 layer norms cost more than they save)
AUTO_PRECISION = {"siren": "float32", "spder": "float32", "neogrid": "float32"}


def rffnet_sigma(kind: str, audio_sigma: float | None = None) -> float | tuple[float, ...]:
    """The RFF-MLP's frequencies for a signal of ``kind``; ``audio_sigma`` (the sound's spectral sigma,
    :func:`neofield.signal.audio_rff_sigma`) replaces the sound's time axis where there is one."""
    sigma = RFFNET_SIGMA[kind]
    if audio_sigma is None or kind not in ("audio", "audiovisual"):
        return sigma
    return audio_sigma if kind == "audio" else (*sigma[:2], audio_sigma)


def baseline_for(arch: str, in_features: int, out_features: int, parameters: int, kind: str,
                 seed: int = 0, audio_sigma: float | None = None) -> nn.Module:
    """The paper's baseline ``arch`` as wide as gives about ``parameters`` parameters (the NeoMLP
    field's it is compared with, latents included): SIREN and SPDER 5 layers, the RFF-MLP 4 layers
    over 256 Fourier features (``audio_sigma``: see :func:`rffnet_sigma`)."""
    def config(width: int):
        if arch == "rffnet":
            return RFFNetConfig(in_features, out_features, width=width, layers=RFFNET_LAYERS, rff_dim=RFFNET_FEATURES,
                                rff_sigma=rffnet_sigma(kind, audio_sigma), seed=seed)
        return SirenConfig(in_features, out_features, width=width, layers=SIREN_LAYERS)

    width = min(range(1, 4097), key=lambda w: abs(parameter_count(arch, config(w)) - parameters))
    torch.manual_seed(seed)
    return build(arch, config(width))
