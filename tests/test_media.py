from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from neofield.errors import NeofieldError
from neofield.media import Selection, mux_audio, parse_size, read_media, write_audio, write_image, write_video
from tests.conftest import BACH, BBB, BIKES


def test_video_is_read_as_uint8_rgb_frames():
    media = read_media(BIKES)
    assert media.kind == "video" and media.video.dtype == np.uint8
    assert media.video.shape[0] == 25 and media.video.shape[-1] == 3 and media.fps == 25


def test_selection_cuts_and_resizes():
    media = read_media(BIKES, Selection(start=0.2, duration=0.4, resize=(40, 20)))
    assert media.video.shape == (10, 20, 40, 3)
    assert read_media(BIKES, Selection(max_frames=3)).video.shape[0] == 3


def test_start_skips_the_right_frames():
    whole = read_media(BIKES).video
    part = read_media(BIKES, Selection(start=0.4, max_frames=2)).video
    assert np.array_equal(part, whole[10:12])


def test_video_with_sound_keeps_both_tracks():
    media = read_media(BBB, Selection(duration=0.5))
    assert media.kind == "audiovisual"
    assert media.audio.shape == (24000, 6) and media.sample_rate == 48000 and len(media.video) == 12


def test_max_frames_also_ends_the_sound():
    media = read_media(BBB, Selection(max_frames=5))
    assert len(media.video) == 5 and len(media.audio) == 5 * 48000 // 25


def test_audio_file_is_read_as_float_in_unit_range():
    media = read_media(BACH, Selection(start=0.5, duration=0.25))
    assert media.kind == "audio" and media.audio.shape == (11025, 1) and media.audio.dtype == np.float32
    assert np.abs(media.audio).max() <= 1


def test_image_is_a_one_frame_video(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    media = read_media(tmp_path / "a.png")
    assert media.kind == "image" and np.array_equal(media.video[0], img)


def test_lossless_video_and_sound_round_trip(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    audio = np.random.default_rng(1).uniform(-0.9, 0.9, (4800, 2)).astype(np.float32)
    write_video(tmp_path / "a.mp4", iter(video), 25.0, audio, 48000, lossless=True)
    back = read_media(tmp_path / "a.mp4")
    assert np.array_equal(back.video, video)
    assert np.abs(back.audio - audio).max() < 1 / 2**14  # 16-bit FLAC


def test_wav_is_written_as_exact_float(tmp_path):
    audio = np.random.default_rng(0).uniform(-1, 1, (100, 1)).astype(np.float32)
    write_audio(tmp_path / "a.wav", audio, 8000)
    assert np.array_equal(sf.read(tmp_path / "a.wav", dtype="float32", always_2d=True)[0], audio)


@pytest.mark.parametrize("make,message", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.write_bytes(b""), p)[1], "is empty"),
    (lambda p: (p.write_text("this is not a video\n" * 20), p)[1], "not a media file"),
])
def test_bad_files_are_one_line_errors(tmp_path, make, message):
    path = make(tmp_path / "clip.mp4")
    with pytest.raises(NeofieldError, match=message) as info:
        read_media(path)
    assert "\n" not in str(info.value)


def test_file_without_video_or_audio_stream_is_refused(tmp_path):
    path = tmp_path / "subs.mkv"
    path.write_bytes(SUBTITLE_ONLY_MKV(tmp_path))
    with pytest.raises(NeofieldError, match="no video or audio stream"):
        read_media(path)


def SUBTITLE_ONLY_MKV(tmp_path) -> bytes:
    """A Matroska file whose only stream is a subtitle track."""
    import av

    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    out_path = tmp_path / "s.mkv"
    with av.open(str(srt)) as src, av.open(str(out_path), "w") as out:
        stream = out.add_stream_from_template(src.streams.subtitles[0])
        for packet in src.demux(src.streams.subtitles[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return out_path.read_bytes()


def test_parse_size():
    assert parse_size("320x180") == (320, 180)
    with pytest.raises(NeofieldError):
        parse_size("320 by 180")


@pytest.mark.parametrize("suffix,codec,pix_fmt", [
    (".webm", "libvpx-vp9", "yuv420p"),
    (".mov", "libx264", "yuv420p"),
    (".mkv", "ffv1", "yuv444p"),
    (".gif", "gif", "rgb8"),
])
def test_common_containers_are_read(tmp_path, suffix, codec, pix_fmt):
    import av

    path = tmp_path / f"clip{suffix}"
    frames = read_media(BIKES, Selection(max_frames=3, resize=(32, 16))).video
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 32, 16, pix_fmt
        for f in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(s.encode(None))
    media = read_media(path)
    assert media.video.shape == (3, 16, 32, 3) and media.video.dtype == np.uint8


@pytest.mark.parametrize("suffix,subtype", [(".ogg", "VORBIS"), (".flac", "PCM_16")])
def test_compressed_sound_files_are_read(tmp_path, suffix, subtype):
    audio = read_media(BACH, Selection(duration=0.1)).audio
    sf.write(tmp_path / f"a{suffix}", audio, 44100, subtype=subtype)
    media = read_media(tmp_path / f"a{suffix}")
    assert media.kind == "audio" and abs(len(media.audio) - len(audio)) < 1024


def test_mp3_is_read_through_ffmpeg_or_libsndfile(tmp_path):
    import av

    audio = read_media(BACH, Selection(duration=0.2)).audio
    path = tmp_path / "a.mp3"
    with av.open(str(path), "w") as out:
        mux_audio(out, out.add_stream("libmp3lame", rate=44100, layout="mono"), audio, 44100)
    media = read_media(path)
    assert media.kind == "audio" and media.sample_rate == 44100 and len(media.audio) > 4000


def test_cover_art_is_not_a_video_track(tmp_path):
    import av

    audio = read_media(BACH, Selection(duration=0.2)).audio
    art = np.zeros((16, 16, 3), np.uint8)
    write_image(tmp_path / "cover.png", art)
    path = tmp_path / "song.m4a"
    with av.open(str(path), "w", format="mp4") as out, av.open(str(tmp_path / "cover.png")) as cover:
        a = out.add_stream("alac", rate=44100, layout="mono")
        pic = out.add_stream_from_template(cover.streams.video[0])
        pic.disposition = av.stream.Disposition.attached_pic
        for packet in cover.demux(cover.streams.video[0]):
            if packet.dts is not None:
                packet.stream = pic
                out.mux(packet)
        mux_audio(out, a, audio, 44100)
    with av.open(str(path)) as c:
        if not any(s.disposition & av.stream.Disposition.attached_pic for s in c.streams.video):
            pytest.skip("this FFmpeg build did not keep the attached-picture flag")
    media = read_media(path)
    assert media.kind == "audio" and len(media.audio) > 8000


# ---------------------------------------------------------------- geometry ----
def marked_frames(n=3, h=12, w=16):
    """Frames with a bright block in the top-left corner, to see which way is up."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[:, :4, :6] = 255
    return frames


def write_raw(path, frames, rotation=0, sar=None, pts_ms=None):
    """Write frames with PyAV directly: a display rotation, a pixel shape, or uneven times."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt, s.options = "yuv444p", {"qp": "0"}
        if rotation:
            s.set_display_rotation(rotation)
        if sar:
            s.codec_context.sample_aspect_ratio = Fraction(*sar)
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[i], Fraction(1, 1000)
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)


def test_a_rotated_clip_is_read_upright(tmp_path):
    write_raw(tmp_path / "r.mp4", marked_frames(), rotation=90)
    media = read_media(tmp_path / "r.mp4")
    assert media.rotation == 90 and media.video.shape == (3, 16, 12, 3)
    # turned 90 degrees counter-clockwise, the top-left block lands bottom-left
    assert media.video[0, -1, 0].min() > 200 and media.video[0, 0, 0].max() < 50


def test_resize_of_a_rotated_clip_is_the_displayed_size(tmp_path):
    write_raw(tmp_path / "r.mp4", marked_frames(), rotation=270)
    assert read_media(tmp_path / "r.mp4", Selection(resize=(6, 8))).video.shape == (3, 8, 6, 3)


def test_sample_aspect_ratio_is_read_and_written_back(tmp_path):
    import av

    write_raw(tmp_path / "s.mp4", marked_frames(), sar=(4, 3))
    media = read_media(tmp_path / "s.mp4")
    assert media.sample_aspect_ratio == (4, 3)
    write_video(tmp_path / "back.mp4", iter(media.video), 25.0, sample_aspect_ratio=media.sample_aspect_ratio)
    with av.open(str(tmp_path / "back.mp4")) as c:
        assert c.streams.video[0].sample_aspect_ratio == Fraction(4, 3)


def test_variable_frame_rate_is_resampled_to_a_constant_rate(tmp_path):
    frames = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 80, 160, 240)])
    write_raw(tmp_path / "v.mp4", frames, pts_ms=[0, 40, 120, 160])  # 0.2 s, a gap after frame 1
    media = read_media(tmp_path / "v.mp4")
    assert media.vfr and media.fps == pytest.approx(20, abs=5)  # the stream's average rate
    values = [int(f.mean()) for f in media.video]
    expected = round(0.2 * media.fps)
    assert len(media.video) == expected and values[0] == 0 and values[-1] == 240
    assert values == sorted(values)  # sample-and-hold: time only moves forward


def test_a_constant_rate_clip_is_not_taken_for_variable():
    assert not read_media(BIKES, Selection(max_frames=5)).vfr


# ----------------------------------------------------------------- writers ----
@pytest.mark.parametrize("suffix,codec,pix", [(".mp4", "h264", "yuv420p"), (".mov", "h264", "yuv420p"),
                                              (".mkv", "h264", "yuv420p"), (".webm", "vp9", "yuv420p"),
                                              (".gif", "gif", "bgra")])  # the gif decoder hands out bgra
def test_each_container_writes_frames_that_decode_back(tmp_path, suffix, codec, pix):
    import av

    frames = np.random.default_rng(0).integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    write_video(tmp_path / f"a{suffix}", iter(frames), 10.0)
    with av.open(str(tmp_path / f"a{suffix}")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == codec and s.codec_context.pix_fmt == pix
        assert sum(1 for _ in c.decode(s)) == 3
    assert read_media(tmp_path / f"a{suffix}").video.shape == frames.shape


def test_default_mp4_is_what_browsers_play_and_lossless_is_exact(tmp_path):
    import av

    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    audio = np.zeros((4800, 2), np.float32)
    write_video(tmp_path / "play.mp4", iter(frames), 25.0, audio, 48000)
    with av.open(str(tmp_path / "play.mp4")) as c:
        assert c.streams.video[0].profile != "High 4:4:4 Predictive" and c.streams.audio[0].codec_context.name == "aac"
    write_video(tmp_path / "exact.mp4", iter(frames), 25.0, audio, 48000, lossless=True)
    assert np.array_equal(read_media(tmp_path / "exact.mp4").video, frames)


def test_odd_sizes_are_padded_to_even_for_four_two_zero(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (2, 9, 13, 3), dtype=np.uint8)
    write_video(tmp_path / "odd.mp4", iter(frames), 25.0)
    back = read_media(tmp_path / "odd.mp4").video
    assert back.shape == (2, 10, 14, 3)


def test_the_last_frame_lasts_until_the_end_time(tmp_path):
    import av

    frames = np.zeros((3, 8, 8, 3), np.uint8)
    for suffix in (".mp4", ".mkv", ".webm"):
        write_video(tmp_path / f"e{suffix}", iter(frames), 2.5, end_time=1.0, frames_total=3)  # 0.4 + 0.4 + 0.2 s
        with av.open(str(tmp_path / f"e{suffix}")) as c:
            assert c.duration / 1e6 == pytest.approx(1.0, abs=1e-3), suffix


def test_codec_and_crf_are_checked_against_the_container(tmp_path):
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(NeofieldError, match="does not go into"):
        write_video(tmp_path / "a.webm", iter(frames), 25.0, codec="h264")
    with pytest.raises(NeofieldError, match="--crf"):
        write_video(tmp_path / "a.mp4", iter(frames), 25.0, crf=80)
    with pytest.raises(NeofieldError, match="--codec must be one of"):
        write_video(tmp_path / "a.mp4", iter(frames), 25.0, codec="mpeg2")


def test_aac_reads_back_at_its_written_length_and_without_delay(tmp_path):
    t = np.arange(24000) / 48000
    sound = np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], 1).astype(np.float32)
    write_audio(tmp_path / "a.m4a", sound, 48000)
    back = read_media(tmp_path / "a.m4a").audio
    assert abs(len(back) - 24000) <= 64
    n = min(len(back), 24000)
    assert np.corrcoef(back[:n, 0], sound[:n, 0])[0, 1] > 0.99


def test_picture_sequence_is_all_or_nothing(tmp_path):
    from neofield.media import write_image_sequence

    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    paths = write_image_sequence(str(tmp_path / "f_%03d.png"), iter(frames))
    assert [p.name for p in paths] == ["f_000.png", "f_001.png", "f_002.png"]
    assert np.array_equal(read_media(paths[2]).video[0], frames[2])
    with pytest.raises(NeofieldError, match="already exists"):
        write_image_sequence(str(tmp_path / "f_%03d.png"), iter(frames), frames_total=3)

    def failing():
        yield frames[0]
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        write_image_sequence(str(tmp_path / "g_%d.png"), failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_000.png", "f_001.png", "f_002.png"]
    with pytest.raises(NeofieldError, match="one frame-number field"):
        write_image_sequence(str(tmp_path / "h.png"), iter(frames))


def test_tags_round_trip_in_every_output_that_has_them(tmp_path):
    from neofield.media import read_tags

    tag = {"comment": '{"neofield": "x"}'}
    write_video(tmp_path / "a.mkv", iter(np.zeros((1, 8, 8, 3), np.uint8)), 25.0, metadata=tag)
    assert read_tags(tmp_path / "a.mkv")["comment"] == tag["comment"]
    for suffix in (".wav", ".flac", ".ogg", ".opus", ".m4a", ".mp3"):
        write_audio(tmp_path / f"a{suffix}", np.zeros((960, 1), np.float32), 48000, metadata=tag)
        assert read_tags(tmp_path / f"a{suffix}").get("comment") == tag["comment"], suffix
    assert read_tags(tmp_path / "missing.mp4") == {}
