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
