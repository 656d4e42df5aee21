"""Latent layouts: which latent sets serve a coordinate (neofield.fields.layouts)."""

import pytest
import torch

from neofield.fields import layouts
from neofield.fields.layouts import LAYOUTS, TimeSegments, blend
from neofield.fields.neomlp import NeoMLPField, build_config
from neofield.metadata import Checker
from neofield.errors import NeofieldError
from neofield.schema import DEFAULT_LIMITS


def test_segments_pick_latents_by_time():
    seg = TimeSegments(segments=4, t_start=-1, t_end=1)
    t = torch.tensor([[-1.0], [-0.51], [-0.49], [0.99], [1.0]])
    assert seg.ids(t).tolist() == [0, 0, 1, 3, 3]


def test_linear_latents_blend_the_sets_around_a_time():
    seg = TimeSegments(segments=4, t_start=-1, t_end=1, interpolation="linear")  # centres -0.75 .. 0.75
    i0, i1, w = seg.neighbours(torch.tensor([[-1.0], [-0.75], [-0.5], [0.0], [0.75], [1.0]]))
    assert i0.tolist() == [0, 0, 0, 1, 2, 2] and i1.tolist() == [1, 1, 1, 2, 3, 3]
    assert torch.allclose(w, torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 1.0]))

    torch.manual_seed(0)
    nearest = NeoMLPField(build_config("tiny", 1, 1), TimeSegments(4, -1, 1)).eval()
    linear = NeoMLPField(build_config("tiny", 1, 1), seg).eval()
    linear.load_state_dict(nearest.state_dict())
    centres = torch.tensor([[-0.75], [-0.25], [0.25], [0.75]])
    with torch.no_grad():
        assert torch.allclose(linear(centres), nearest(centres), atol=1e-6)  # a set's centre is that set alone
        mid = linear(torch.tensor([[0.0]]))
        blended = nearest.backbone(torch.tensor([[0.0]]), nearest.latents.table[1:3].mean(0, keepdim=True))
        assert torch.allclose(mid, blended, atol=1e-6)


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="interpolation"):
        TimeSegments(interpolation="cubic")


@pytest.mark.parametrize("segments,interpolation", [(1, "nearest"), (1, "linear"), (5, "nearest"), (5, "linear")])
def test_gather_is_the_blend_of_the_rows_and_weights_it_names(segments, interpolation):
    layout = TimeSegments(segments, -1.0, 1.0, interpolation=interpolation)
    table = torch.randn(segments, 3, 4)
    coords = torch.rand(200, 3) * 2.4 - 1.2  # some before the first centre and after the last
    ids, weights = layout.rows(coords)
    assert ids.shape == weights.shape and ids.min() >= 0 and ids.max() < layout.sets
    assert torch.allclose(weights.sum(1), torch.ones(len(coords)))
    assert torch.allclose(layout.gather(table, coords), blend(table, ids, weights), atol=1e-6)


@pytest.mark.parametrize("interpolation", layouts.INTERPOLATIONS)
def test_rows_for_a_time_range_hold_every_row_its_points_read_and_no_more(interpolation):
    layout = TimeSegments(10, -1.0, 1.0, interpolation=interpolation)
    for lo, hi in [(-1.0, 1.0), (-0.33, -0.1), (0.05, 0.05), (0.9, 1.0)]:
        need = layout.rows_for(torch.tensor([0.0, 0.0, lo]), torch.tensor([0.0, 0.0, hi]))
        t = torch.linspace(lo, hi, 500)
        coords = torch.stack([torch.zeros(500), torch.zeros(500), t], 1)
        ids, weights = layout.rows(coords)
        read = set(ids[weights > 0].tolist())
        assert read <= set(need.tolist())
        assert len(need) <= len(read) + 1  # a blend's weight-0 neighbour at an end at most
    assert layout.rows_for(torch.tensor([-1.0]), torch.tensor([1.0])).tolist() == list(range(10))


def test_a_field_counts_the_parameters_its_layout_asks_for():
    config = build_config("tiny", 3, 3)
    layout = TimeSegments(7, -1, 1)
    field = NeoMLPField(config, layout)
    tokens = config.hidden_tokens + config.out_features
    assert field.num_parameters()["latents"] == layout.num_parameters(tokens, config.dim) == 7 * tokens * 32


def test_metadata_round_trips_and_the_default_layout_stores_no_type():
    layout = TimeSegments(4, -0.5, 2.0, time_index=0, interpolation="linear")
    d = layouts.metadata(layout)
    assert "type" not in d and layouts.from_dict(d) == layout
    assert layouts.from_dict(None) == TimeSegments()
    assert set(LAYOUTS) == {"segments", "pyramid"}


def test_the_schema_entry_refuses_what_a_decoder_should_not_build():
    check = Checker("x.nf", DEFAULT_LIMITS)
    good = TimeSegments(3).to_dict()
    TimeSegments.check(check, good, "model.segmentation", 3)
    for key, value, message in [("segments", 0, "segments must be between"), ("t_end", -1.0, "must be after"),
                                ("time_index", 5, "time_index must be between -3 and 2"),
                                ("interpolation", "cubic", "interpolation must be one of")]:
        with pytest.raises(NeofieldError, match=message):
            TimeSegments.check(check, {**good, key: value}, "model.segmentation", 3)
    with pytest.raises(NeofieldError, match="model.segmentation.spare is not a setting"):
        TimeSegments.check(check, {**good, "spare": 1}, "model.segmentation", 3)


def test_default_segments_are_one_per_frame_or_per_1024_samples():
    from neofield.media import Media
    from neofield.signal import Signal
    from tests.conftest import noise_video

    import numpy as np

    assert layouts.default_segments(Signal(Media(video=noise_video(5, 4, 6), fps=10.0))) == 5
    sound = Signal(Media(audio=np.zeros((2049, 1), np.float32), sample_rate=8000))
    assert layouts.default_segments(sound) == 3
