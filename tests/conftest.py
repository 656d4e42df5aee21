"""Shared fixtures: tiny real media cut from the clips shipped in examples/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neofield.media import Selection, read_media, write_video

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BIKES = EXAMPLES / "bikes_1s.mp4"
BBB = EXAMPLES / "bbb_1s.mp4"
BACH = EXAMPLES / "bach_2s.flac"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """4 frames of the bikes clip at 32x14: a real clip small enough to fit in seconds."""
    media = read_media(BIKES, Selection(max_frames=4, resize=(32, 14)))
    path = tmp_path_factory.mktemp("media") / "tiny.mp4"
    write_video(path, iter(media.video), media.fps, lossless=True)
    return path


@pytest.fixture(scope="session")
def tiny_av_clip(tmp_path_factory) -> Path:
    """0.12 s of Big Buck Bunny at 16x10 with its 6-channel sound."""
    media = read_media(BBB, Selection(duration=0.12, resize=(16, 10)))
    path = tmp_path_factory.mktemp("media") / "tiny_av.mp4"
    write_video(path, iter(media.video), media.fps, media.audio, media.sample_rate, lossless=True)
    return path


@pytest.fixture(scope="session")
def tiny_sound(tmp_path_factory) -> Path:
    """0.05 s of the Bach clip (2,205 samples) as float wav."""
    import soundfile as sf

    media = read_media(BACH, Selection(duration=0.05))
    path = tmp_path_factory.mktemp("media") / "tiny.wav"
    sf.write(path, media.audio, media.sample_rate, subtype="FLOAT")
    return path


def noise_video(frames=3, height=6, width=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
