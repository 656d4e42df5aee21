"""neofield: a media codec that stores a clip or a sound as a fitted NeoMLP neural field.

Data flow (one module per step)::

    media/  -> signal.py -> fields/ + fit.py -> quantize.py -> entropy.py -> bundle.py -> render.py -> media/
    read        Signal       NeoMLPField         symbols        coded         .nf          any grid     write

:mod:`neofield.codec` strings the steps together, one module per verb (encode, decode, psnr), and the
``neofield`` command (:mod:`neofield.cli`) wraps it. The functions below are the public API.
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


def lazy_api(package: str, api: dict[str, str], extra: tuple[str, ...] = ()):
    """``__getattr__`` and ``__dir__`` for ``package``, whose names ``api`` maps to the submodule that
    defines them, imported on first use (PEP 562): importing the package costs nothing."""
    def getattr_(name: str):
        if name in api:
            return getattr(importlib.import_module(f".{api[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted([*api, *extra])

    return getattr_, dir_


__getattr__, __dir__ = lazy_api(__name__, _API, ("__version__",))
