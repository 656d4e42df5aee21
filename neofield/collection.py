"""A set bundle: many signals of one grid over one backbone, and any one of them as an ordinary bundle.

``neofield set fit`` stores a collection (``meta["collection"]``, checked by :mod:`neofield.schema`): its
``items`` signals' latent sets lie one signal after the other in the model's table of time segments,
``segments_per_item`` each. Opening one signal needs nothing of how the set was fitted, only that
layout, so it lives here, in the bundle layer, where the codec's ``load`` and ``decode --item`` reach it
without importing the nu-set package above them.
"""

from __future__ import annotations

import torch

from .bundle import Bundle
from .errors import NeofieldError
from .fields.layouts import TimeSegments
from .fields.neomlp import NeoMLPField


def item_index(meta: dict, item: str | int) -> int:
    """An item of a set bundle by index or by name."""
    col = meta["collection"]
    names = col.get("names") or []
    if isinstance(item, int) or (isinstance(item, str) and item.lstrip("-").isdigit() and item not in names):
        k = int(item)
        if not 0 <= k < col["items"]:
            raise NeofieldError(f"--item {k} is out of range: this set holds {col['items']:,} items (0 to "
                                f"{col['items'] - 1:,})")
        return k
    if item in names:
        return names.index(item)
    raise NeofieldError(f"this set holds no item named {item!r}")


def item_field(field: NeoMLPField, segments_per_item: int, item: int) -> NeoMLPField:
    """Item ``item`` of a set field as an ordinary single-signal field (its own rows of the table)."""
    seg = field.layout
    one = NeoMLPField(field.config, TimeSegments(segments_per_item, seg.t_start, seg.t_end, seg.time_index,
                                                 "nearest"))
    one.backbone.load_state_dict(field.backbone.state_dict())
    rows = slice(item * segments_per_item, (item + 1) * segments_per_item)
    with torch.no_grad():
        one.latents.table.copy_(field.latents.table[rows])
    return one.eval()


def select(b: Bundle, item: str | int | None, name: str = "bundle") -> Bundle:
    """The bundle to decode: ``b`` itself when it holds one signal, or item ``item`` of a set bundle."""
    collection = b.meta.get("collection")
    if collection is None:
        if item is not None:
            raise NeofieldError(f"{name} holds one signal: --item applies to a set bundle (neofield set fit)")
        return b
    if item is None:
        raise NeofieldError(f"{name} holds a set of {collection['items']:,} signals: pick one with --item "
                            f"(0 to {collection['items'] - 1:,}, or a name)")
    k = item_index(b.meta, item)
    meta = {key: v for key, v in b.meta.items() if key not in ("collection", "quality")}
    label = (collection.get("names") or [str(k)])[k]
    meta["source"] = {**meta["source"], "name": f"{meta['source']['name']}: {label}"}
    meta["model"] = {**meta["model"], "segmentation": {**meta["model"]["segmentation"],
                                                       "segments": collection["segments_per_item"]}}
    return Bundle(field=item_field(b.field, collection["segments_per_item"], k), meta=meta)
