"""Multiply-adds per decoded point, counted on the fields themselves."""

from __future__ import annotations

import torch

from neofield.fields.cost import macs_per_point, matmul_macs, read_macs
from neofield.fields.gridmlp import GridConfig, GridField
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config


def test_the_papers_video_field_costs_what_docs_cpu_defaults_counts():
    config = build_config("tiny", 3, 3, kind="video")
    field = NeoMLPField(config, TimeSegments(25, -1.0, 1.0, 2, "linear"))
    assert 170_000 < macs_per_point(field) < 185_000  # ~177 k (docs/cpu-defaults.md)
    nearest = NeoMLPField(config, TimeSegments(25, -1.0, 1.0, 2, "nearest"))
    assert read_macs(field) > 0 and read_macs(nearest) == 0  # blending two sets costs; picking one does not


def test_a_linear_layer_costs_its_weights_and_a_grid_field_its_head_and_reads():
    assert matmul_macs(torch.nn.Linear(3, 5), 3) == 15
    grid = GridField(GridConfig(3, 3, (-1.0,) * 3, (1.0,) * 3, coarse=(2, 2, 2), fine=(8, 8, 4), levels=3,
                                channels=2, width=16, layers=2))
    head = 6 * 16 + 16 * 3
    assert macs_per_point(grid) == head + 3 * 2 * 8


def test_counting_leaves_the_field_as_it_was():
    grid = GridField(GridConfig(1, 1, (-1.0,), (1.0,), audio_outputs=1, audio_coarse=2, audio_fine=16,
                                audio_levels=2, audio_channels=2, width=8))
    grid.train()
    before = {k: v.clone() for k, v in grid.state_dict().items()}
    macs_per_point(grid)
    assert grid.training and all(torch.equal(before[k], v) for k, v in grid.state_dict().items())


def test_a_video_with_sounds_pixel_and_sample_cost_what_their_decodes_compute():
    """The latent-grid fields compute only the outputs a stream's decode asks for, and are counted so."""
    from neofield.fields.neogrid import neogrid_for

    shape = dict(low=(-1.0,) * 3, high=(1.0,) * 3, picture=(16, 10, 3), audio_samples=5_000, out_features=9,
                 audio_outputs=6)
    pixel, sample = slice(0, 3), slice(3, 9)
    neogrid = neogrid_for(parameters=20_000, hidden_tokens=8, **shape)
    whole = macs_per_point(neogrid)
    assert macs_per_point(neogrid, pixel) < macs_per_point(neogrid, sample) < whole  # 3, 6 and 9 output tokens
    hidden = 14 * 2 * 8 * 3 * 8  # 14 levels x 2 values -> 8 hidden tokens' centred selves, keys and values
    shared = read_macs(neogrid) + hidden  # paid once a point, whatever the outputs
    assert macs_per_point(neogrid, pixel) + macs_per_point(neogrid, sample) - whole == shared
    grid = GridField(GridConfig(3, 9, (-1.0,) * 3, (1.0,) * 3, coarse=(2, 2, 2), fine=(8, 8, 4), levels=3,
                                channels=2, audio_outputs=6, audio_coarse=2, audio_fine=16, audio_levels=2,
                                audio_channels=2, width=16, layers=2))
    picture, sound = 6 * 16 + 16 * 3 + 3 * 2 * 8, 4 * 16 + 16 * 6 + 2 * 2 * 2  # head + reads, each stream's own
    assert (macs_per_point(grid, pixel), macs_per_point(grid, sample), macs_per_point(grid)) == (
        picture, sound, picture + sound)
