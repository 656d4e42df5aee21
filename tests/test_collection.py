"""Set bundles opened one signal at a time (neofield.collection)."""

import pytest
import torch

from neofield.bundle import Bundle
from neofield.collection import item_field, item_index, select
from neofield.errors import NeofieldError
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config


def a_set(items: int = 3, per: int = 2) -> Bundle:
    torch.manual_seed(0)
    field = NeoMLPField(build_config("tiny", 1, 1), TimeSegments(items * per, -1.0, 1.0)).eval()
    meta = {"source": {"name": "sounds"}, "quality": {"mean_psnr_db": 30.0},
            "model": {"segmentation": field.layout.to_dict()},
            "collection": {"items": items, "segments_per_item": per, "names": ["a", "b", "7"]}}
    return Bundle(field, meta)


def test_an_item_is_its_own_rows_of_the_table_over_the_same_backbone():
    b = a_set()
    one = select(b, "b")
    assert torch.equal(one.field.latents.table, b.field.latents.table[2:4])
    assert one.meta["model"]["segmentation"]["segments"] == 2 and "collection" not in one.meta
    assert one.meta["source"]["name"] == "sounds: b" and "quality" not in one.meta
    t = torch.tensor([[-0.9], [0.6]])
    expected = b.field.backbone(t, b.field.latents.table[[2, 3]])
    assert torch.allclose(one.field(t), expected)


def test_items_are_found_by_index_or_by_name_and_a_name_that_looks_like_a_number_wins():
    meta = a_set().meta
    assert item_index(meta, 0) == 0 and item_index(meta, "1") == 1 and item_index(meta, "a") == 0
    assert item_index(meta, "7") == 2  # the name "7", not index 7
    with pytest.raises(NeofieldError, match="--item 3 is out of range"):
        item_index(meta, 3)
    with pytest.raises(NeofieldError, match="no item named 'zz'"):
        item_index(meta, "zz")


def test_a_set_needs_an_item_and_a_single_signal_refuses_one():
    with pytest.raises(NeofieldError, match="pick one with --item"):
        select(a_set(), None, "x.nf")
    single = Bundle(NeoMLPField(build_config("tiny", 1, 1)), {"source": {"name": "one"}})
    assert select(single, None) is single
    with pytest.raises(NeofieldError, match="holds one signal"):
        select(single, 0, "x.nf")
    assert item_field(a_set().field, 2, 1).latents.table.shape[0] == 2
