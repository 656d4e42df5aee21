"""The codec: media -> signal -> field -> bundle, and back, as plain functions, one module per verb.

* :mod:`.options` - :class:`EncodeOptions`, every option of an encode, checked in one place;
* :mod:`.build` - the field an encode fits, sized and tuned for the signal;
* :mod:`.encoder` - ``encode``: check options, read media, build the field, fit, store, measure, write;
* :mod:`.decoder` - ``decode`` on any grid, and ``load``;
* :mod:`.quality` - ``psnr`` of a bundle or a decoded file, and the encoder's own ``measure``.

This is the Python API the command line wraps::

    import neofield
    report = neofield.encode("clip.mp4", "clip.nf", time_budget=120)
    neofield.decode("clip.nf", "clip_2x.mp4", scale=2)
    print(neofield.psnr("clip.mp4", "clip.nf"))

The names below are imported on first use, so that the command line can read :mod:`.options` (to build
its flags) without importing torch.
"""

from __future__ import annotations

from .. import lazy_api

_API = {
    "EncodeOptions": "options", "DEFAULT_EPOCHS": "options", "DEFAULT_TIME_BUDGET": "options",
    "encode": "encoder", "EncodeReport": "encoder", "EncodeInterrupted": "encoder", "signal_metadata": "encoder",
    "resolve": "encoder", "fit_config": "encoder",
    "make_field": "build", "default_preset": "build", "sound_sigma": "build", "rff_sigma_for": "build",
    "decode": "decoder", "load": "decoder", "DecodeReport": "decoder", "check_cost": "decoder",
    "psnr": "quality", "measure": "quality",
}
__all__ = list(_API)
__getattr__, __dir__ = lazy_api(__name__, _API)
