import numpy as np
import pytest
import torch

from neofield.codec import make_field
from neofield.errors import NeofieldError
from neofield.media import Media
from neofield.render import AudioGrid, VideoGrid, plan_decode, render_audio, render_media, render_video
from neofield.signal import VIDEO_VALUES, Signal, ValueMap
from tests.conftest import noise_video


class Probe(torch.nn.Module):
    """A 'field' that returns its own coordinates, to see exactly where it is evaluated."""

    def __init__(self, outputs: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.outputs = outputs

    def forward(self, coords):
        return coords[:, :1].repeat(1, self.outputs) if coords.shape[1] == 1 else coords


def test_scale_one_evaluates_exactly_the_training_coordinates():
    signal = Signal(Media(video=noise_video(3, 4, 5), fps=25.0))
    seen = []

    class Recorder(Probe):
        def forward(self, coords):
            seen.append(coords)
            return super().forward(coords)

    list(render_video(Recorder(3), signal.coordinate_map, VideoGrid(5, 4, 3, 25.0), VIDEO_VALUES))
    rendered = torch.cat(seen)
    gen = torch.Generator().manual_seed(0)
    sampled, _, _ = signal.sample(200, gen)
    rendered_set = {tuple(np.round(c, 5)) for c in rendered.numpy()}
    assert len(rendered_set) == 60
    assert all(tuple(np.round(c, 5)) in rendered_set for c in sampled.numpy())


def test_scale_two_doubles_every_axis_and_covers_the_same_span():
    signal = Signal(Media(video=noise_video(4, 6, 8), fps=25.0, audio=np.zeros((400, 2), np.float32),
                          sample_rate=2500))
    plan = plan_decode(signal.layout(), scale=2)
    assert (plan.video.width, plan.video.height, plan.video.frames, plan.video.fps) == (16, 12, 8, 50.0)
    assert (plan.audio.samples, plan.audio.sample_rate) == (800, 5000)


def test_audio_render_is_chunked_without_seams():
    signal = Signal(Media(audio=np.zeros((1000, 1), np.float32), sample_rate=1000))
    whole = render_audio(Probe(1), signal.coordinate_map, AudioGrid(1000, 1000), ValueMap(1.0, 0.0), block=10_000)
    chunked = render_audio(Probe(1), signal.coordinate_map, AudioGrid(1000, 1000), ValueMap(1.0, 0.0), block=64)
    assert np.array_equal(whole, chunked)


def test_rendered_media_matches_grid_shapes():
    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0))
    field = make_field(signal, "tiny", segments=2)
    media = render_media(field, signal.layout(), plan_decode(signal.layout(), scale=2))
    assert media.video.shape == (4, 8, 12, 3) and media.video.dtype == np.uint8


def uneven_signal() -> Signal:
    """0.12 s of pictures (3 frames at 25 fps) with 0.2 s of sound: streams of unequal length."""
    return Signal(Media(video=noise_video(3, 4, 5), fps=25.0, audio=np.zeros((200, 1), np.float32), sample_rate=1000))


def test_each_stream_keeps_its_own_length():
    layout = uneven_signal().layout()
    plan = plan_decode(layout)
    assert (plan.video.frames, plan.audio.samples) == (3, 200)
    plan = plan_decode(layout, scale=2)
    assert (plan.video.frames, plan.audio.samples) == (6, 400)


def test_a_time_range_inside_streams_of_unequal_length():
    layout = uneven_signal().layout()
    plan = plan_decode(layout, start=0.1)
    assert plan.video.frames == 1 and plan.video.seconds == pytest.approx(0.02) and plan.audio.samples == 100
    plan = plan_decode(layout, start=0.15)  # past the last frame: sound only
    assert plan.video is None and plan.audio.samples == 50


def test_a_frame_rate_that_does_not_divide_the_clip_keeps_its_exact_length():
    layout = Signal(Media(video=noise_video(4, 4, 5), fps=4.0)).layout()  # 1 s
    plan = plan_decode(layout, fps=2.5)
    assert plan.video.frames == 3 and plan.video.seconds == pytest.approx(1.0)
    assert plan_decode(layout, fps=8).video.frames == 8


def test_scale_time_and_scale_rate_set_the_rates_apart_from_space():
    layout = uneven_signal().layout()
    plan = plan_decode(layout, scale=2, scale_time=1, scale_rate=0.5)
    assert (plan.video.width, plan.video.frames, plan.video.fps) == (10, 3, 25.0)
    assert (plan.audio.sample_rate, plan.audio.samples) == (500, 100)


def test_a_still_at_a_time_is_one_frame_centred_there():
    layout = Signal(Media(video=noise_video(4, 4, 5), fps=4.0)).layout()
    plan = plan_decode(layout, frame=0.6)
    assert plan.video.frames == 1 and plan.video.start + 0.5 / plan.video.fps == pytest.approx(0.6)
    with pytest.raises(NeofieldError, match="--frame"):
        plan_decode(layout, frame=1.5)
