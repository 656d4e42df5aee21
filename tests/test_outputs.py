"""What a decode writes follows from the output's name, checked before rendering."""

from pathlib import Path

import pytest

from neofield.errors import NeofieldError
from neofield.outputs import resolve_target

VIDEO = {"modality": "video", "outputs": {"video": [0, 3]},
         "geometry": {"duration": 1.0, "video": {"width": 8, "height": 6, "frames": 4, "fps": 4.0, "still": False}}}
AUDIO = {"modality": "audio", "outputs": {"audio": [0, 1]},
         "geometry": {"duration": 1.0, "audio": {"sample_rate": 100, "channels": 1, "samples": 100}}}
IMAGE = {"modality": "image", "outputs": {"video": [0, 3]},
         "geometry": {"duration": 1.0, "video": {"width": 8, "height": 6, "frames": 1, "fps": 1.0, "still": True}}}
BUNDLE = Path("clip.nf")


@pytest.mark.parametrize("name,kind", [("a.mp4", "video"), ("a.webm", "video"), ("a.gif", "video"),
                                       ("a.mov", "video"), ("f/%05d.png", "sequence"), ("f/%d.jpg", "sequence")])
def test_the_suffix_picks_the_kind_of_output(name, kind):
    assert resolve_target(name, BUNDLE, VIDEO).kind == kind


def test_a_still_of_a_clip_needs_a_time():
    with pytest.raises(NeofieldError, match="--frame SECONDS"):
        resolve_target("a.png", BUNDLE, VIDEO)
    assert resolve_target("a.png", BUNDLE, VIDEO, frame=0.5).kind == "still"
    assert resolve_target("a.png", BUNDLE, IMAGE).kind == "still"
    with pytest.raises(NeofieldError, match="one picture"):
        resolve_target("a.mp4", BUNDLE, VIDEO, frame=0.5)


def test_standard_output_takes_its_format_from_the_option():
    t = resolve_target("-", BUNDLE, VIDEO)
    assert t.stdout and t.suffix == ".mkv" and t.kind == "video"
    assert resolve_target("-", BUNDLE, AUDIO).suffix == ".wav"
    assert resolve_target("-", BUNDLE, VIDEO, format="webm").suffix == ".webm"
    with pytest.raises(NeofieldError, match="standard output"):
        resolve_target("a.mp4", BUNDLE, VIDEO, format="webm")
    with pytest.raises(NeofieldError, match="cannot write"):
        resolve_target("-", BUNDLE, VIDEO, format="txt")


def test_sound_and_pictures_go_only_where_the_bundle_has_them():
    with pytest.raises(NeofieldError, match="sound only"):
        resolve_target("a.mp4", BUNDLE, AUDIO)
    with pytest.raises(NeofieldError, match="holds no sound"):
        resolve_target("a.wav", BUNDLE, VIDEO)
    assert resolve_target(None, BUNDLE, AUDIO).path == Path("clip.decoded.wav")
    assert resolve_target(None, BUNDLE, VIDEO, scale=2).path == Path("clip.x2.mp4")
