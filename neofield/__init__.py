"""neofield: a media codec that stores a clip or a sound as a fitted NeoMLP neural field.

Data flow (one module per step)::

    media.py  -> signal.py -> fields/ + fit.py -> bundle.py -> render.py -> media.py
    read          Signal       NeoMLPField          .nf          any grid      write

The functions below are the public API; the ``neofield`` command wraps them.
"""

__version__ = "0.1.0"

from .codec import decode, encode, load, psnr  # noqa: E402
from .errors import NeofieldError  # noqa: E402
from .media import Selection, read_media  # noqa: E402
from .render import evaluate  # noqa: E402

__all__ = ["encode", "decode", "psnr", "load", "evaluate", "read_media", "Selection", "NeofieldError",
           "__version__"]
