"""Latent grids: reads shared out among threads, and the grid field's heads picked by the outputs asked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neofield.fields.grid import read_grids
from neofield.fields.gridmlp import GridField, grid_config_for


@pytest.mark.parametrize("axes", [1, 3])
def test_reads_shared_out_among_threads_are_those_of_one_read(axes, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # 2,051 points: 3 items, the last padded
    grid = torch.randn(2, 5, 4, 7) if axes == 3 else torch.randn(2, 9)
    u = torch.rand(2051, axes) * 2.2 - 1.1  # a few beyond the borders, clamped
    if axes == 3:
        where, g = u.view(1, 1, 1, -1, 3), grid[None]
    else:
        where, g = torch.stack([u[:, 0], torch.zeros(len(u))], -1).view(1, 1, -1, 2), grid[None, :, None]
    one = F.grid_sample(g, where, mode="bilinear", padding_mode="border", align_corners=False).reshape(2, -1)
    (shared,) = read_grids([grid], u)
    assert shared.shape == (2, 2051) and torch.allclose(shared, one, atol=1e-6)


def test_a_grid_field_computes_only_the_streams_of_the_outputs_asked(monkeypatch):
    torch.manual_seed(0)
    field = GridField(grid_config_for((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (16, 10, 3), 5000, 5, 2, 20_000))
    coords = torch.rand(50, 3) * 2 - 1
    whole = field(coords)
    assert torch.allclose(field(coords, slice(3, 5)), whole[:, 3:5])
    assert torch.allclose(field(coords, slice(1, 4)), whole[:, 1:4])  # across both streams

    def unread(*args):
        raise AssertionError("the sound's pyramid was read for the pictures")

    monkeypatch.setattr(field.latents["audio"], "forward", unread)
    assert torch.allclose(field(coords, slice(0, 3)), whole[:, :3])
