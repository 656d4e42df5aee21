import shutil
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

from neofield.errors import NeofieldError
from neofield.media import (
    Selection,
    is_lossy,
    keeps_sample_aspect_ratio,
    mux_audio,
    parse_size,
    read_media,
    read_tags,
    write_audio,
    write_image,
    write_image_sequence,
    write_video,
)
from neofield.media.video_writer import LOSSY_DEFAULT
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
    from fractions import Fraction

    import av

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


@pytest.mark.parametrize("rotation,corner", [(180, (-1, -1)), (270, (0, -1))])
def test_each_rotation_lands_the_corner_where_players_show_it(tmp_path, rotation, corner):
    write_raw(tmp_path / "r.mp4", marked_frames(), rotation=rotation)
    media = read_media(tmp_path / "r.mp4")
    assert media.rotation == rotation
    assert media.video.shape == ((3, 12, 16, 3) if rotation == 180 else (3, 16, 12, 3))
    assert media.video[0][corner].min() > 200 and media.video[0, 0, 0].max() < 50


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
    assert media.vfr and media.fps == 20  # the stream's average rate: 4 frames in 0.2 s
    # output frame k shows the latest frame at or before (k + 0.5) / 20 s: 25, 75, 125, 175 ms
    assert [int(f.mean()) for f in media.video] == [0, 80, 160, 240]
    # the first two frames look even (40 ms at 20 fps); the gap after them still counts
    assert read_media(tmp_path / "v.mp4", Selection(max_frames=2)).vfr


def test_dropped_frames_are_held_and_the_count_follows_the_duration(tmp_path):
    pts = [0, 40, 120, 160, 200, 330]  # the last frame lasts 40 ms: 0.37 s in all
    frames = np.stack([np.full((8, 8, 3), 40 * i, np.uint8) for i in range(len(pts))])
    write_raw(tmp_path / "v.mp4", frames, pts_ms=pts)
    media = read_media(tmp_path / "v.mp4")
    fps = 6 / 0.37  # FFmpeg's average rate
    assert media.vfr and media.fps == pytest.approx(fps)
    times = (np.arange(round(0.37 * fps)) + 0.5) / fps * 1000
    expected = [40 * (np.searchsorted(pts, t, side="right") - 1) for t in times]
    assert [int(f.mean()) for f in media.video] == expected == [0, 40, 80, 160, 160, 200]  # 120 ms is skipped
    # --max-frames cuts the same resampled clip, and still sees the gap that follows
    part = read_media(tmp_path / "v.mp4", Selection(max_frames=3))
    assert part.vfr and np.array_equal(part.video, media.video[:3])


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


# ------------------------------------------------------- more of the writers ----
def decoded(path):
    """(frame count, width, height, codec, codec tag, pix_fmt) as FFmpeg decodes ``path``."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        count = sum(1 for _ in c.decode(s))
        return count, s.width, s.height, s.codec_context.name, s.codec_tag, s.codec_context.pix_fmt


@pytest.mark.parametrize("suffix,codec,name", [(".mkv", "h265", "hevc"), (".mp4", "vp9", "vp9"),
                                               (".webm", "av1", "libdav1d"), (".mkv", "ffv1", "ffv1")])
def test_every_codec_writes_what_ffmpeg_decodes(tmp_path, suffix, codec, name):
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
    write_video(tmp_path / f"a{suffix}", iter(frames), 10.0, codec=codec)
    count, w, h, decoder, _, _ = decoded(tmp_path / f"a{suffix}")
    assert (count, w, h) == (3, 20, 16) and decoder.startswith(name[:4])
    if codec == "ffv1":  # archival: exact RGB
        assert np.array_equal(read_media(tmp_path / f"a{suffix}").video, frames)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_h265_in_mp4_is_tagged_hvc1_for_apple_players(tmp_path, count):
    # one or two frames: libx265 hands out garbage decode times, which the mp4 muxer refuses
    frames = np.zeros((count, 16, 16, 3), np.uint8)
    write_video(tmp_path / "a.mp4", iter(frames), 10.0, codec="h265")
    assert decoded(tmp_path / "a.mp4")[::4] == (count, "hvc1")


def test_too_small_for_the_codec_is_a_one_line_error(tmp_path):
    with pytest.raises(NeofieldError, match="at least 16x16") as info:
        write_video(tmp_path / "a.mkv", iter(np.zeros((2, 8, 8, 3), np.uint8)), 10.0, codec="h265")
    assert "\n" not in str(info.value)
    with pytest.raises(NeofieldError, match="no video frames"):
        write_video(tmp_path / "b.mp4", iter([]), 10.0)


def test_crf_range_is_the_codecs_own(tmp_path):
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    write_video(tmp_path / "a.webm", iter(frames), 25.0, crf=63)  # VP9 goes to 63, H.264 to 51
    with pytest.raises(NeofieldError, match=r"\[0, 51\]"):
        write_video(tmp_path / "a.mp4", iter(frames), 25.0, crf=63)
    with pytest.raises(NeofieldError, match=r"\[1, 63\]"):
        write_video(tmp_path / "a.mkv", iter(frames), 25.0, codec="av1", crf=0)
    with pytest.raises(NeofieldError, match="lossy codecs"):
        write_video(tmp_path / "a.mp4", iter(frames), 25.0, lossless=True, crf=10)
    with pytest.raises(NeofieldError, match="ffv1 does not go into"):
        write_video(tmp_path / "a.mp4", iter(frames), 25.0, codec="ffv1")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_odd_sizes_pad_with_the_edge_and_never_crash(tmp_path, suffix):
    frames = np.zeros((2, 5, 7, 3), np.uint8)
    frames[:, :, -1] = 255  # a white last column, a black last row
    write_video(tmp_path / f"odd{suffix}", iter(frames), 10.0)
    back = read_media(tmp_path / f"odd{suffix}").video.astype(int)
    if suffix == ".gif":  # no 4:2:0, no padding
        assert back.shape == (2, 5, 7, 3)
        return
    assert back.shape == (2, 6, 8, 3)
    assert back[:, :, -1].min() > 200 and back[:, -1, :6].max() < 60  # the pad repeats its neighbour
    write_video(tmp_path / f"dot{suffix}", iter(np.zeros((1, 1, 1, 3), np.uint8)), 10.0)
    assert read_media(tmp_path / f"dot{suffix}").video.shape == (1, 2, 2, 3)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".webm", ".gif"])
def test_the_end_time_holds_without_knowing_the_frame_count(tmp_path, suffix):
    import av

    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    write_video(tmp_path / f"e{suffix}", iter(frames), 2.5, end_time=1.0)  # 0.4 + 0.4 + 0.2 s
    with av.open(str(tmp_path / f"e{suffix}")) as c:
        s = c.streams.video[0]
        assert c.duration / 1e6 == pytest.approx(1.0, abs=1e-3)
        assert [round(float(p.pts * p.time_base), 3) for p in c.demux(s) if p.pts is not None] == [0, 0.4, 0.8]
    write_video(tmp_path / f"f{suffix}", iter(frames), 2.5)  # by default the last frame lasts a whole frame
    with av.open(str(tmp_path / f"f{suffix}")) as c:
        assert c.duration / 1e6 == pytest.approx(1.2, abs=1e-3)


def test_sample_aspect_ratio_survives_where_the_file_can_hold_it(tmp_path):
    import av

    frames = np.zeros((2, 16, 16, 3), np.uint8)
    for suffix, codec in [(".mp4", None), (".mov", None), (".mkv", None), (".mkv", "h265"), (".mp4", "vp9"),
                          (".webm", None), (".mkv", "ffv1")]:
        path = tmp_path / f"s_{codec}{suffix}"
        write_video(path, iter(frames), 10.0, codec=codec, sample_aspect_ratio=(4, 3))
        with av.open(str(path)) as c:
            kept = c.streams.video[0].sample_aspect_ratio == Fraction(4, 3)
        assert kept == keeps_sample_aspect_ratio(path, codec), (suffix, codec)
        assert read_media(path).sample_aspect_ratio == ((4, 3) if kept else (1, 1))
    assert keeps_sample_aspect_ratio("a.mp4") and not keeps_sample_aspect_ratio("a.webm")


def noise(seconds, rate, channels=2, seed=0):
    """Noise below 4 kHz: AAC at 96 kb/s per channel keeps it well (white noise up to 24 kHz it does not)."""
    white = np.random.default_rng(seed).normal(0, 1, (int(seconds * rate) + 64, channels))
    kernel = np.sinc(np.arange(-32, 33) * 8000 / rate) * np.hanning(65)
    low = np.stack([np.convolve(white[:, c], kernel, "valid") for c in range(channels)], 1)[: int(seconds * rate)]
    return (0.3 * low / low.std()).clip(-1, 1).astype(np.float32)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_aac_beside_video_has_its_written_length_and_no_delay(tmp_path, suffix):
    sound = noise(0.5, 48000)
    write_video(tmp_path / f"a{suffix}", iter(np.zeros((5, 8, 8, 3), np.uint8)), 10.0, sound, 48000)
    back = read_media(tmp_path / f"a{suffix}")
    assert back.sample_rate == 48000 and abs(len(back.audio) - 24000) <= 64
    n = min(len(back.audio), 24000) - 2048
    lags = range(-1024, 1025, 8)
    corr = [np.corrcoef(back.audio[1024 + k:1024 + k + n, 0], sound[1024:1024 + n, 0])[0, 1] for k in lags]
    assert corr[lags.index(0)] > 0.9 and max(corr) == corr[lags.index(0)]


@pytest.mark.parametrize("suffix", [".opus", ".webm"])
def test_opus_is_written_at_48_khz(tmp_path, suffix):
    sound = noise(0.5, 22050)  # Opus could take 24 kHz, but every decoder gives 48 kHz back
    if suffix == ".opus":
        write_audio(tmp_path / "a.opus", sound, 22050)
    else:
        write_video(tmp_path / "a.webm", iter(np.zeros((5, 8, 8, 3), np.uint8)), 10.0, sound, 22050)
    back = read_media(tmp_path / f"a{suffix}")
    assert back.sample_rate == 48000 and abs(len(back.audio) - 24000) <= 64


def test_aac_gets_the_nearest_rate_it_supports(tmp_path):
    frames = iter(np.zeros((2, 8, 8, 3), np.uint8))
    write_video(tmp_path / "a.mp4", frames, 10.0, np.zeros((3000, 1), np.float32), 30000)
    back = read_media(tmp_path / "a.mp4")
    assert back.sample_rate == 32000 and abs(len(back.audio) - 3200) <= 64


def test_picture_sequence_patterns_and_overwrites(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    for bad in ("f_%5d.png", "f_%s.png", "f_%d_%d.png", "f_%05d.txt", "f.png"):
        with pytest.raises(NeofieldError) as info:
            write_image_sequence(str(tmp_path / bad), iter(frames))
        assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
    paths = write_image_sequence(str(tmp_path / "%d.jpg"), iter(frames))
    assert [p.name for p in paths] == ["0.jpg", "1.jpg"]
    # the count unknown: refused at the first existing file, before anything moves
    (tmp_path / "f_001.png").write_bytes(b"keep")
    with pytest.raises(NeofieldError, match="f_001.png already exists"):
        write_image_sequence(str(tmp_path / "f_%03d.png"), iter(frames))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.jpg", "1.jpg", "f_001.png"]
    write_image_sequence(str(tmp_path / "f_%03d.png"), iter(frames), force=True)
    assert np.array_equal(read_media(tmp_path / "f_001.png").video[0], frames[1])
    with pytest.raises(NeofieldError, match="does not exist"):
        write_image_sequence(str(tmp_path / "no" / "%d.png"), iter(frames))


def test_tags_in_every_video_container(tmp_path):
    tag = {"comment": '{"neofield": "x", "name": "café"}'}
    for suffix in (".mp4", ".mov", ".mkv", ".webm"):
        write_video(tmp_path / f"a{suffix}", iter(np.zeros((1, 8, 8, 3), np.uint8)), 25.0,
                    np.zeros((4800, 1), np.float32), 48000, metadata=tag)
        assert read_tags(tmp_path / f"a{suffix}")["comment"] == tag["comment"], suffix
    write_video(tmp_path / "a.gif", iter(np.zeros((1, 8, 8, 3), np.uint8)), 25.0, metadata=tag)
    assert "comment" not in read_tags(tmp_path / "a.gif")  # FFmpeg's gif muxer writes no tags
    (tmp_path / "t.mp4").write_text("not media")
    assert read_tags(tmp_path / "t.mp4") == {}


def test_the_caller_can_tell_a_lossy_write():
    assert is_lossy("a.mp4") and is_lossy("a.webm") and is_lossy("a.gif") and is_lossy("a.m4a")
    assert not is_lossy("a.mp4", lossless=True) and not is_lossy("a.mkv", codec="ffv1")
    assert not is_lossy("a.wav") and not is_lossy("a.flac") and not is_lossy("a.png")
    assert is_lossy("a.gif", lossless=True) and {".mp4", ".jpg", ".opus"} <= LOSSY_DEFAULT


def test_unknown_sound_suffix_is_a_one_line_error(tmp_path):
    with pytest.raises(NeofieldError, match="cannot write sound into .aiff"):
        write_audio(tmp_path / "a.aiff", np.zeros((10, 1), np.float32), 8000)


def test_sound_is_interleaved_with_the_pictures(tmp_path):
    import av

    frames = np.zeros((15 * 25, 8, 8, 3), np.uint8)  # longer than the muxer's own 10 s interleaving window
    write_video(tmp_path / "a.mp4", iter(frames), 25.0, noise(15.0, 48000, channels=1), 48000)
    with av.open(str(tmp_path / "a.mp4")) as c:
        kinds = [p.stream.type for p in c.demux() if p.size]
    assert kinds.index("audio") <= 5  # a player reading from the front finds the sound at once


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command is not installed")
def test_upright_and_resampled_frames_match_the_ffmpeg_command(tmp_path):
    """FFmpeg's own command turns a clip as players do (autorotate) and its fps filter
    resamples variable rates: what neofield reads must be the same pixels."""
    import subprocess

    def ffmpeg_frames(path, *args):
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), *args, "-f", "rawvideo", "-pix_fmt", "rgb24",
                              "-"], capture_output=True, check=True).stdout
        return np.frombuffer(raw, np.uint8)

    for rotation in (90, 180, 270):
        write_raw(tmp_path / "r.mp4", marked_frames(), rotation=rotation)
        ours = read_media(tmp_path / "r.mp4").video
        assert np.array_equal(ffmpeg_frames(tmp_path / "r.mp4").reshape(ours.shape), ours), rotation
    pts = [0, 10, 20, 200, 210, 400, 433]
    write_raw(tmp_path / "v.mp4", np.stack([np.full((8, 8, 3), 30 * i, np.uint8) for i in range(7)]), pts_ms=pts)
    ours = read_media(tmp_path / "v.mp4")
    rate = Fraction(ours.fps).limit_denominator(100000)
    theirs = ffmpeg_frames(tmp_path / "v.mp4", "-vf", f"fps={rate}").reshape(-1, 8, 8, 3)
    assert ours.vfr and np.array_equal(theirs, ours.video)


def test_lossy_video_says_which_colours_it_holds(tmp_path):
    import av
    from av.video.reformatter import Colorspace

    from neofield.metrics import video_psnr

    frames = read_media(BBB, Selection(max_frames=1)).video
    write_video(tmp_path / "c.mp4", iter(frames), 25.0, crf=0)
    with av.open(str(tmp_path / "c.mp4")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range) == (1, 1, 1, 1)  # BT.709, tv
        frame = next(c.decode(video=0))
        as_tagged = frame.to_ndarray(format="rgb24")
        as_bt601 = frame.reformat(format="rgb24", src_colorspace=Colorspace.ITU601).to_ndarray()
    # the pixels really are BT.709: read with the tag's matrix they match, with BT.601's they do not
    assert video_psnr(frames, as_tagged[None]) > 38 > video_psnr(frames, as_bt601[None])


@pytest.mark.parametrize("suffix", [".opus", ".ogg", ".flac", ".wav"])
def test_surround_sound_reads_back_in_the_channel_order_it_was_written(tmp_path, suffix):
    # one loud channel at a time: Ogg stores 5.1 in Vorbis order, which must not leak into the samples
    for loud in range(6):
        sound = np.zeros((24000, 6), np.float32)
        sound[:, loud] = 0.5 * np.sin(np.arange(24000) * 2 * np.pi * 440 / 48000)
        write_audio(tmp_path / f"c{loud}{suffix}", sound, 48000)
        back = read_media(tmp_path / f"c{loud}{suffix}").audio
        assert back.shape[1] == 6 and int(np.abs(back).sum(axis=0).argmax()) == loud, (suffix, loud)


def test_a_frame_number_field_wider_than_twelve_digits_is_refused(tmp_path):
    from neofield.media import write_image_sequence

    with pytest.raises(NeofieldError, match="a frame number of at most 12 digits"):
        write_image_sequence(str(tmp_path / "f%0999999d.png"), iter([np.zeros((2, 2, 3), np.uint8)]))
    assert not list(tmp_path.iterdir())
