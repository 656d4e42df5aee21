"""The codec's field builder: a neogrid field's pyramid lays its time axis as finely as the picture's motion asks."""

from __future__ import annotations

import numpy as np

from neofield.codec.build import TIME_WEIGHTS, neogrid_field, time_weight
from neofield.media import Media
from neofield.signal import Signal


def _texture(frames: int, moving: bool) -> np.ndarray:
    """Stripes across x: still, or shifted a whole period's half every frame (all change, frame to frame)."""
    x = np.arange(48)
    rows = [np.where(((x + (8 * f if moving else 0)) // 8) % 2 == 0, 200, 40) for f in range(frames)]
    return np.repeat(np.stack(rows)[:, None, :, None], 3, axis=3).repeat(20, axis=1).astype(np.uint8)


def test_a_still_texture_lays_time_coarsely_and_motion_finely():
    assert time_weight(_texture(12, moving=False)) == TIME_WEIGHTS[0]
    assert time_weight(_texture(12, moving=True)) == TIME_WEIGHTS[1]
    assert time_weight(_texture(1, moving=True)) == 1.0  # a single frame has no motion to weigh


def test_a_moving_picture_gets_more_nodes_in_time_for_the_same_parameters():
    still, moving = (neogrid_field(Signal(Media(video=_texture(24, m), fps=24.0)), 20_000) for m in (False, True))
    (s,), (m,) = still.layout.pyramids, moving.layout.pyramids
    assert s.fine[2] < m.fine[2] and s.fine[0] > m.fine[0]
    assert abs(still.num_parameters()["total"] / moving.num_parameters()["total"] - 1) < 0.1
