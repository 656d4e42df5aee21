"""The neural fields a bundle can hold, by the name its metadata stores (``model.type``).

NeoMLP is the codec's model; SIREN, SPDER and the RFF-MLP are the NeoMLP
paper's baselines, stored, decoded and scored by the same code so that a user
can compare them on their own media (``neofield encode --arch``). Every field
has the same call convention (``forward(coords (B, I)) -> (B, O)``, a
``config`` dataclass, ``num_parameters()``); only NeoMLP has latent sets
(``segmentation``).
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

from torch import nn

from .baselines import RFFNet, RFFNetConfig, Siren, SirenConfig, Spder
from .neomlp import NeoMLPField, Segmentation
from .presets import NeoMLPConfig

ARCHS = ("neomlp", "siren", "spder", "rffnet")
CONFIGS = {"neomlp": NeoMLPConfig, "siren": SirenConfig, "spder": SirenConfig, "rffnet": RFFNetConfig}


def arch_of(field: nn.Module) -> str:
    """The name a bundle stores for ``field``'s architecture."""
    for arch, cls in (("neomlp", NeoMLPField), ("spder", Spder), ("siren", Siren), ("rffnet", RFFNet)):
        if isinstance(field, cls):  # Spder before Siren: it is one
            return arch
    raise TypeError(f"{type(field).__name__} is not a field neofield can store")


def config_from_dict(arch: str, d: dict):
    """The architecture's config dataclass from its stored dict (JSON lists back to tuples)."""
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return CONFIGS[arch](**d)


def config_keys(arch: str) -> set[str]:
    return {f.name for f in dataclass_fields(CONFIGS[arch])}


def build(arch: str, config, segmentation: dict | None = None) -> nn.Module:
    """A fresh field of ``arch`` (weights to be loaded); NeoMLP takes its latent sets' segmentation."""
    if arch == "neomlp":
        return NeoMLPField(config, Segmentation(**(segmentation or {})))
    return {"siren": Siren, "spder": Spder, "rffnet": RFFNet}[arch](config)


def parameter_count(arch: str, config, segments: int = 1) -> int:
    """Parameters of the field ``build`` would make, computed without building it (tested against the
    models): what a bundle's configuration would make a decoder allocate."""
    if arch == "neomlp":
        d, f = config.dim, config.ffn_dim
        block = 3 * d * d + (d * d + d) + (d * f + f) + (f * d + d)  # qkv (no bias), out, FFN in and out
        encoding = config.rff_dim * d + d if config.encoding == "rff" else config.in_features * d
        backbone = encoding + config.in_features * d + config.layers * block + (d + 1)
        return backbone + segments * (config.hidden_tokens + config.out_features) * d
    # an MLP of `layers` linear layers: first -> width, (layers - 2) x width -> width, width -> outputs
    w, o = config.width, config.out_features
    first = config.in_features if arch in ("siren", "spder") else config.rff_dim
    if config.layers == 1:  # an RFF-MLP may be its read-out alone
        return (first + 1) * o
    return (first + 1) * w + (config.layers - 2) * (w + 1) * w + (w + 1) * o
