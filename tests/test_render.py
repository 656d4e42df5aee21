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


def test_frames_rendered_in_row_bands_equal_frames_rendered_whole(monkeypatch):
    import neofield.render as render

    signal = Signal(Media(video=noise_video(2, 9, 7), fps=10.0))
    field = make_field(signal, "tiny", segments=2)
    grid = VideoGrid(7, 9, 2, 10.0)
    whole = list(render_video(field, signal.coordinate_map, grid, VIDEO_VALUES))
    monkeypatch.setattr(render, "ROW_POINTS", 7 * 2)  # two rows a band, the last band one row
    banded = list(render_video(field, signal.coordinate_map, grid, VIDEO_VALUES))
    assert all(np.array_equal(a, b) for a, b in zip(whole, banded))
    seen = []

    class Recorder(Probe):
        def forward(self, coords):
            seen.append(len(coords))
            return super().forward(coords)

    list(render_video(Recorder(3), signal.coordinate_map, grid, VIDEO_VALUES))
    assert max(seen) == 14 and sum(seen) == 7 * 9 * 2  # no band held more than its rows


def test_evaluator_reports_progress_in_points_and_pads_nothing_into_the_result():
    from neofield.render import Evaluator

    field = make_field(Signal(Media(video=noise_video(2, 4, 6), fps=10.0)), "tiny", segments=2)
    counts = []
    run = Evaluator(field, chunk=64, on_points=counts.append)
    coords = torch.rand(150, 3) * 2 - 1
    out = run(coords)
    assert counts == [64, 64, 22] and out.shape == (150, 3)
    assert torch.equal(out, Evaluator(field, chunk=64)(coords))


@pytest.mark.skipif(not __import__("neofield.runtime").runtime.compiler_available(torch.device("cpu")),
                    reason="no C++ compiler for inductor")
def test_compiled_decoding_matches_eager_within_float_tolerance():
    from neofield.render import Evaluator

    field = make_field(Signal(Media(video=noise_video(2, 4, 6), fps=10.0)), "tiny", segments=2)
    coords = torch.rand(300, 3) * 2 - 1  # 2 chunks of 256, the second padded
    compiled = Evaluator(field, chunk=256, compiled=True)
    assert torch.allclose(compiled(coords), Evaluator(field, chunk=256)(coords), atol=1e-5)
    assert compiled.compiled and not compiled.notes


def test_a_failing_compiler_decodes_eagerly_and_says_so(monkeypatch):
    from neofield.render import Evaluator

    def broken(module, **kw):
        def run(*args):
            raise RuntimeError("no cc")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    field = make_field(Signal(Media(video=noise_video(2, 4, 6), fps=10.0)), "tiny", segments=2)
    coords = torch.rand(100, 3) * 2 - 1
    run = Evaluator(field, chunk=64, compiled=True)
    assert torch.equal(run(coords), Evaluator(field, chunk=64)(coords))
    assert run.notes == ["torch.compile failed (RuntimeError); decoded without it"]


def test_decode_cost_counts_points_memory_and_time():
    from neofield.render import FRAME_COPIES, DecodePlan, decode_cost

    plan = DecodePlan(VideoGrid(100, 50, 4, 25.0), AudioGrid(1000, 8000))
    cost = decode_cost(plan, audio_channels=2, points_per_second=1000.0)
    assert cost.points == 100 * 50 * 4 + 1000
    assert cost.output_bytes == 100 * 50 * 3 * 4 + 1000 * 2 * 4
    assert cost.memory_bytes >= FRAME_COPIES * 100 * 50 * 3 + 2 * 1000 * 2 * 4
    assert cost.seconds == pytest.approx(21.0)


@pytest.mark.skipif(not __import__("neofield.runtime").runtime.compiler_available(torch.device("cpu")),
                    reason="no C++ compiler for inductor")
def test_a_latent_grid_field_decodes_compiled_as_eager_and_computes_only_the_outputs_asked():
    from neofield.fields.neogrid import neogrid_for
    from neofield.render import Evaluator

    torch.manual_seed(0)
    field = neogrid_for((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (16, 10, 3), 5000, 5, 2, 20_000)
    coords = torch.rand(300, 3) * 2 - 1
    compiled, eager = Evaluator(field, chunk=256, compiled=True), Evaluator(field, chunk=256)
    whole = eager(coords)
    assert torch.allclose(compiled(coords, slice(0, 3)), whole[:, :3], atol=1e-5)
    assert compiled.compiled and not compiled.notes
    assert eager(coords, slice(3, 5)).shape == (300, 2) and eager(coords[:0], slice(3, 5)).shape == (0, 2)


def test_frames_between_the_fitted_ones_are_their_blend_by_time():
    from neofield.render import Evaluator

    field = make_field(Signal(Media(video=noise_video(4, 6, 8), fps=10.0)), "tiny", segments=2)
    meta = {"geometry": {"duration": 0.4, "video": {"width": 8, "height": 6, "frames": 4, "fps": 10.0}}}
    cmap = Signal(Media(video=noise_video(4, 6, 8), fps=10.0)).coordinate_map
    fitted = np.stack(list(render_video(field, cmap, plan_decode(meta).video, VIDEO_VALUES)))
    plan = plan_decode(meta, scale_time=2.0)  # 8 frames at 20 fps: each a quarter from a fitted frame's time
    assert plan.video.fitted == (10.0, 4) and plan.video.rendered == 4 and plan.points == 4 * 48
    calls = []
    doubled = np.stack(list(render_video(Evaluator(field, on_points=calls.append), cmap, plan.video, VIDEO_VALUES)))
    assert len(doubled) == 8 and sum(calls) == 4 * 48  # each fitted frame rendered once
    lerp = fitted[:-1].astype(np.float32) * 0.75 + fitted[1:].astype(np.float32) * 0.25  # frame 2m+1: m + 1/4
    assert np.abs(doubled[1:-1:2].astype(np.float32) - lerp).max() <= 1.0  # blended before rounding
    assert (doubled[0] == fitted[0]).all() and (doubled[-1] == fitted[-1]).all()  # held beyond the ends
    own = plan_decode(meta, scale_time=2.0, between="field").video
    assert own.fitted is None and own.rendered == 8
    with pytest.raises(NeofieldError, match="--between"):
        plan_decode(meta, between="nearest")
