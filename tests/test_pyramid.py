"""The pyramid latent layout: reads by interpolation, rows that name them, boxes, metadata, schema."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from neofield.fields import layouts
from neofield.fields.pyramid import Pyramid, PyramidLayout
from neofield.metadata import Checker
from neofield.schema import DEFAULT_LIMITS

PICTURE = Pyramid((0, 1, 2), (-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (3, 2, 2), (12, 9, 5), 3)
SOUND = Pyramid((2,), (-1.0,), (1.0,), (4,), (40,), 4)
TAPPED = dataclasses.replace(PICTURE, taps=1)  # its finest level read at four taps as well


def table_for(layout: PyramidLayout, seed: int = 0) -> torch.Tensor:
    return torch.randn(layout.sets, 1, layout.channels, generator=torch.Generator().manual_seed(seed))


def test_levels_grow_from_coarse_to_fine_and_the_table_holds_every_node():
    assert PICTURE.sizes[0] == (3, 2, 2) and PICTURE.sizes[-1] == (12, 9, 5)
    layout = PyramidLayout((PICTURE, SOUND), channels=3)
    assert layout.tokens == 7
    assert layout.sets == sum(a * b * c for a, b, c in PICTURE.sizes) + sum(n for (n,) in SOUND.sizes)


def test_a_read_at_a_node_centre_is_that_nodes_value():
    layout = PyramidLayout((Pyramid((0,), (0.0,), (4.0,), (4,), (4,), 1),), channels=1)
    table = torch.arange(4.0).view(4, 1, 1)
    centres = torch.tensor([[0.5], [1.5], [2.5], [3.5]])
    assert torch.allclose(layout.gather(table, centres)[:, 0, 0], torch.arange(4.0))
    midway = layout.gather(table, torch.tensor([[1.0], [-3.0]]))[:, 0, 0]  # between nodes 0 and 1; clamped
    assert torch.allclose(midway, torch.tensor([0.5, 0.0]))


@pytest.mark.parametrize("picture", [PICTURE, TAPPED])
def test_gather_is_the_weighted_sum_of_the_rows_it_names(picture):
    layout = PyramidLayout((picture, SOUND), channels=2)
    table = table_for(layout)
    coords = torch.rand(50, 3, generator=torch.Generator().manual_seed(1)) * 2.4 - 1.2  # some outside the box
    read = layout.gather(table, coords)
    ids, weights = layout.rows(coords)
    assert torch.allclose(weights.sum(1), torch.full((50,), float(layout.tokens)), atol=1e-5)  # 1 per level
    flat = table[:, 0]
    start = 0
    for level in range(layout.tokens):
        corners = 8 if level < picture.tokens else 2
        part = slice(start, start + corners)
        expect = (flat[ids[:, part]] * weights[:, part, None]).sum(1)
        assert torch.allclose(read[:, level], expect, atol=1e-5)
        start += corners


@pytest.mark.parametrize("picture", [PICTURE, TAPPED])
def test_rows_for_a_box_hold_every_row_its_points_read(picture):
    layout = PyramidLayout((picture,), channels=2)
    low, high = torch.tensor([-0.5, 0.1, -1.0]), torch.tensor([0.2, 0.6, -0.2])
    inside = low + torch.rand(500, 3, generator=torch.Generator().manual_seed(2)) * (high - low)
    ids, weights = layout.rows(inside)
    needed = set(ids[weights > 0].tolist())
    box = set(layout.rows_for(low, high).tolist())
    assert needed <= box and len(box) < layout.sets


def test_a_tapped_level_is_also_read_half_a_node_away_along_x_and_y_both_ways():
    tapped, plain = PyramidLayout((TAPPED, SOUND), channels=2), PyramidLayout((PICTURE, SOUND), channels=2)
    assert tapped.tokens == plain.tokens + 4 and tapped.sets == plain.sets  # more reads, the same latents
    table = table_for(plain)
    coords = torch.rand(40, 3, generator=torch.Generator().manual_seed(3)) * 2 - 1
    read, base = tapped.gather(table, coords), plain.gather(table, coords)
    levels = PICTURE.levels
    assert torch.equal(read[:, :levels], base[:, :levels]) and torch.equal(read[:, levels + 4:], base[:, levels:])
    nx, ny, _ = PICTURE.sizes[-1]
    for k, (dx, dy) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):  # half a node: 1 / n of [-1, 1]
        moved = coords + torch.tensor([dx / nx, dy / ny, 0.0])
        assert torch.allclose(read[:, levels + k], plain.gather(table, moved)[:, levels - 1], atol=1e-6)


def test_metadata_round_trips_through_the_layout_registry():
    layout = PyramidLayout((TAPPED, SOUND), channels=2)
    meta = layouts.metadata(layout)
    assert meta["type"] == "pyramid" and layouts.from_dict(meta) == layout
    assert "taps" not in PyramidLayout((PICTURE,), channels=2).to_dict()["pyramids"][0]  # untapped: format 7's


@pytest.mark.parametrize("change, message", [
    (lambda d: d["pyramids"][0].update(axes=[0, 0, 1]), "axes must be 1 to 3 distinct inputs"),
    (lambda d: d["pyramids"][0].update(high=[1.0, -2.0, 1.0]), "high must lie above low"),
    (lambda d: d["pyramids"][0].update(fine=[12, 9]), "fine must be 3 whole numbers"),
    (lambda d: d["pyramids"][0].update(levels=0), "levels"),
    (lambda d: d.update(channels=1000), "channels"),
    (lambda d: d["pyramids"][0].update(low=[float("nan"), 0.0, 0.0]), "low must be 3 finite numbers"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d["pyramids"][0].update(taps=4), "taps"),
    (lambda d: d["pyramids"][0].update(taps=-1), "taps"),
])
def test_the_schema_entry_refuses_a_layout_a_decoder_should_not_build(change, message):
    d = PyramidLayout((PICTURE,), channels=2).to_dict()
    change(d)
    with pytest.raises(Exception, match=message):
        PyramidLayout.check(Checker("bundle", DEFAULT_LIMITS), d, "model.segmentation", 3)


def test_a_pyramid_over_one_axis_has_no_taps():
    d = PyramidLayout((SOUND,), channels=2).to_dict()
    d["pyramids"][0]["taps"] = 1
    with pytest.raises(Exception, match="taps must be 0 for a pyramid over one axis"):
        PyramidLayout.check(Checker("bundle", DEFAULT_LIMITS), d, "model.segmentation", 3)
