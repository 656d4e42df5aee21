"""neofield: a media codec that stores a clip or a sound as a fitted NeoMLP neural field.

Data flow (one module per step)::

    media.py  -> signal.py -> fields/ + fit.py -> quantize.py -> entropy.py -> bundle.py -> render.py -> media.py
    read          Signal       NeoMLPField         symbols        coded         .nf          any grid     write

The functions below are the public API; the ``neofield`` command wraps them.
They are imported on first use, so that ``import neofield`` (and the
command's ``--help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "encode": "codec", "decode": "codec", "psnr": "codec", "load": "codec",
    "evaluate": "render", "read_media": "media", "Selection": "media", "NeofieldError": "errors",
    "BitDepths": "quantize", "EncodeInterrupted": "codec", "EncodeOptions": "codec",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'neofield' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
