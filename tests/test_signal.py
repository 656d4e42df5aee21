import numpy as np
import torch

from neofield.media import Media
from neofield.signal import AUDIO_UNITS_PER_SECOND, Signal, centre_times, video_pixel_grid
from tests.conftest import noise_video


def test_pixel_centres_span_symmetrically_inside_minus_one_one():
    xs, ys = video_pixel_grid(4, 2)
    assert torch.allclose(xs[:4], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    sig = Signal(Media(video=noise_video(2, 2, 4), fps=25.0))
    coords = sig.coordinate_map.coords(centre_times(1, 25.0).float().expand(8), xs, ys)
    assert torch.allclose(coords[:4, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(coords[:, 2], torch.tensor(-0.5))  # frame 0 of 2: centre of the first half


def test_video_time_spans_minus_one_one_and_audio_follows_paper_scale():
    video = Signal(Media(video=noise_video(10), fps=10.0))
    lo, hi = video.coordinate_map.time_span(video.duration)
    assert (lo, hi) == (-1.0, 1.0)
    audio = Signal(Media(audio=np.zeros((7 * 1000, 1), np.float32), sample_rate=1000))
    lo, hi = audio.coordinate_map.time_span(audio.duration)
    assert np.isclose(lo, -100) and np.isclose(hi, 100)
    assert np.isclose(AUDIO_UNITS_PER_SECOND * 7, 200)


def test_video_samples_carry_their_pixel_values_scaled_to_minus_one_one():
    video = noise_video(3, 5, 7)
    sig = Signal(Media(video=video, fps=25.0))
    coords, values, mask = sig.sample(512, torch.Generator().manual_seed(0))
    assert coords.shape == (512, 3) and values.shape == (512, 3) and mask.all()
    assert values.min() >= -1 and values.max() <= 1
    # Invert the coordinate map and check each value against the array.
    col = ((coords[:, 0] + 1) / 2 * 7 - 0.5).round().long()
    row = ((coords[:, 1] + 1) / 2 * 5 - 0.5).round().long()
    frame = ((coords[:, 2] + 1) / 2 * 3 - 0.5).round().long()
    expected = torch.from_numpy(video)[frame, row, col].float() / 127.5 - 1
    assert torch.allclose(values, expected, atol=1e-6)


def test_audiovisual_points_mask_the_other_modality():
    media = Media(video=noise_video(2, 4, 4), fps=10.0, audio=np.zeros((2000, 2), np.float32), sample_rate=10000)
    sig = Signal(media, audio_share=0.5)
    coords, values, mask = sig.sample(1000, torch.Generator().manual_seed(0))
    assert sig.out_features == 5 and mask.shape == (1000, 5)
    audio_rows = mask[:, 3] == 1
    assert 350 < audio_rows.sum() < 650
    assert (mask[audio_rows, :3] == 0).all() and (mask[~audio_rows, 3:] == 0).all()
    assert (coords[audio_rows, :2] == 0).all()  # audio points sit at x = y = 0


def test_default_audio_share_is_the_share_of_points():
    media = Media(video=noise_video(2, 4, 4), fps=10.0, audio=np.zeros((96, 1), np.float32), sample_rate=480)
    assert np.isclose(Signal(media).audio_share, 96 / (96 + 2 * 4 * 4))


def test_quiet_audio_is_scaled_to_the_full_range_and_the_scale_is_kept():
    audio = np.array([[0.05], [-0.1], [0.02]], np.float32)
    sig = Signal(Media(audio=audio, sample_rate=3))
    vm = sig.value_maps["audio"]
    assert np.isclose(vm.scale, 10.0)
    assert sig.layout()["values"]["audio"] == {"scale": vm.scale, "offset": 0.0}
    _, values, _ = sig.sample(64, torch.Generator().manual_seed(0))
    assert values.abs().max() <= 1 and np.isclose(values.abs().max(), 1.0)
    assert torch.allclose(vm.to_raw(vm.to_field(torch.from_numpy(audio))), torch.from_numpy(audio))


def test_silence_does_not_blow_up_the_audio_scale():
    sig = Signal(Media(audio=np.zeros((10, 1), np.float32), sample_rate=10))
    assert sig.value_maps["audio"].scale == 1000.0


def test_a_strided_view_of_frames_samples_like_a_copy():
    video = noise_video(6, 5, 7)
    every_other = Signal(Media(video=video[0::2], fps=12.5))
    copy = Signal(Media(video=video[0::2].copy(), fps=12.5))
    a = every_other.sample(256, torch.Generator().manual_seed(0))
    b = copy.sample(256, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_spectral_centroid_finds_a_tone_and_sets_the_audio_sigma():
    from neofield.signal import audio_rff_sigma, spectral_centroid
    rate = 16000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)[:, None]
    assert abs(spectral_centroid(tone, rate) - 1000) < 20
    assert abs(audio_rff_sigma(tone, rate) - 1000 / AUDIO_UNITS_PER_SECOND) < 1
    assert audio_rff_sigma(np.zeros((rate, 2), np.float32), rate) == 5.0  # silence: the floor
