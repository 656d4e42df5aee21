import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import zstandard

from neofield import bundle
from neofield.codec import make_field, signal_metadata
from neofield.errors import NeofieldError
from neofield.fields.layouts import TimeSegments
from neofield.fields.neomlp import NeoMLPField, build_config
from neofield.media import Media, Selection
from neofield.fields.baselines import RFFNet, RFFNetConfig, Siren, SirenConfig, Spder
from neofield.fields.registry import parameter_count
from neofield.schema import Limits, validate
from neofield.signal import Signal
from tests.conftest import noise_video


@pytest.fixture(scope="module")
def av_bundle() -> bytes:
    """A quantized audio-visual bundle: every part of the schema in one file."""
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (400, 2)).astype(np.float32)
    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0, audio=audio, sample_rate=2000))
    field = make_field(signal, "tiny", segments=2, seed=1)
    meta = signal_metadata(signal, Path("clip.mp4"), Selection())
    meta.update(weights_dtype="quantized", quality={"video_psnr_db": 20.5, "audio_psnr_db": math.inf})
    return bundle.pack(field, meta)


def _meta(data: bytes) -> dict:
    payload = bundle.decompress(data)
    return json.loads(bundle._split(payload)[0]["__metadata__"]["neofield"])


def _repack(data: bytes, meta: dict, content_size: bool = True) -> bytes:
    """The same tensors under other metadata."""
    tensors = safetensors.torch.load(bundle.decompress(data))
    payload = safetensors.torch.save(tensors, {"neofield": json.dumps(meta)})
    return zstandard.ZstdCompressor(write_content_size=content_size).compress(payload)


@pytest.mark.parametrize("preset,inputs,outputs,segments,encoding", [
    ("tiny", 3, 3, 5, "rff"), ("small", 1, 1, 2, "rff"), ("video", 3, 9, 1, "rff"), ("audio", 1, 6, 3, "rff"),
    ("tiny", 3, 3, 4, "linear")])
def test_parameter_count_is_computed_exactly_without_building_the_model(preset, inputs, outputs, segments, encoding):
    config = build_config(preset, inputs, outputs, encoding=encoding)
    field = NeoMLPField(config, TimeSegments(segments))
    assert parameter_count("neomlp", config, field.layout) == field.num_parameters()["total"]


@pytest.mark.parametrize("arch,make", [
    ("siren", lambda: Siren(SirenConfig(3, 3, width=20, layers=4))), ("spder", lambda: Spder(SirenConfig(1, 6))),
    ("rffnet", lambda: RFFNet(RFFNetConfig(3, 9, width=30, layers=3))),
    ("rffnet", lambda: RFFNet(RFFNetConfig(1, 1, layers=1)))])
def test_parameter_count_of_the_baselines_is_exact(arch, make):
    field = make()
    assert parameter_count(arch, field.config) == field.num_parameters()["total"]


def test_a_real_bundle_passes_and_loads(av_bundle):
    validate(_meta(av_bundle), "a.nf")
    assert bundle.unpack(av_bundle).kind == "audiovisual"


@pytest.mark.parametrize("path,value,message", [
    ("model.config.dim", 10**9, "model.config.dim must be between 1 and 4,096, not 1000000000"),
    ("model.config.rff_dim", 10**12, "model.config.rff_dim must be between"),
    ("model.config.layers", 0, "model.config.layers must be between 1"),
    ("model.config.heads", 0, "model.config.heads must be between 1"),
    ("model.config.heads", 5, "model.config.heads must divide dim 32"),
    ("model.config.seed", 2**40, "model.config.seed must be between 0 and 4,294,967,295"),
    ("model.config.rff_sigma", float("nan"), "model.config.rff_sigma must be a number"),
    ("model.config.dim", "32", "model.config.dim must be a whole number, not '32'"),
    ("model.segmentation.segments", 10**8, "model.segmentation.segments must be between 1 and 1,000,000"),
    ("model.segmentation.time_index", 9, "model.segmentation.time_index must be between -3 and 2"),
    ("geometry.duration", float("inf"), "geometry.duration must be a finite number"),
    ("geometry.duration", -1, "geometry.duration must be > 0"),
    ("geometry.video.fps", 1e9, "geometry.video.fps must be between 0.01 and 1000, not 1000000000.0"),
    ("source.name", "clip\x1b[2J.mp4", "source.name must not hold control characters"),
    ("preset", "\ud800", "preset must not hold control characters or lone surrogates"),
    ("geometry.video.width", 10**9, "geometry.video.width must be between 1 and 16,384"),
    ("geometry.audio.sample_rate", 10**12, "geometry.audio.sample_rate must be between"),
    ("geometry.audio.channels", 7, "outputs.audio must be [first, last) of 7"),
    ("modality", "smell", "modality must be one of video, image, audio, audiovisual"),
    ("modality", "audio", "geometry.video must be absent for audio"),
    ("outputs.video", [0, 2], "outputs.video must be [first, last) of 3"),
    ("values.audio.scale", 0, "values.audio.scale must not be 0"),
    ("coordinates.t", None, "coordinates.t is missing"),
    ("source.name", ["a"], "source.name must be text"),
    ("quality.video_psnr_db", "high", "quality.video_psnr_db must be a number"),
    ("source.selection.resize", [16384, 16384], "source.selection.resize must be the frame size in geometry.video"),
])
def test_a_bad_field_is_named_in_one_line(av_bundle, path, value, message):
    meta = _meta(av_bundle)
    *parents, key = path.split(".")
    node = meta
    for p in parents:
        node = node[p]
    node[key] = value
    with pytest.raises(NeofieldError) as info:
        bundle.unpack(_repack(av_bundle, meta), "evil.nf")
    text = str(info.value)
    assert text.startswith("evil.nf: ") and message in text and "\n" not in text, text


@pytest.mark.parametrize("path", ["geometry", "geometry.duration", "geometry.video.fps", "modality", "coordinates",
                                  "model.config", "model.segmentation", "source", "outputs", "values"])
def test_a_missing_field_is_named(av_bundle, path):
    meta = _meta(av_bundle)
    *parents, key = path.split(".")
    node = meta
    for p in parents:
        node = node[p]
    del node[key]
    with pytest.raises(NeofieldError, match=f"{path} is missing"):
        bundle.unpack(_repack(av_bundle, meta), "evil.nf")


@pytest.mark.parametrize("meta", [[], None, "text", 3])
def test_metadata_that_is_not_an_object_is_refused(av_bundle, meta):
    with pytest.raises(NeofieldError, match="metadata must be an object"):
        bundle.unpack(_repack(av_bundle, meta), "evil.nf")


def test_a_model_too_large_for_the_limits_is_refused_before_it_is_built(av_bundle):
    meta = _meta(av_bundle)
    meta["model"]["config"].update(dim=4096, ffn_dim=16384, layers=64)
    with pytest.raises(NeofieldError, match="parameters, more than the 16,000,000 allowed.*--allow-large"):
        bundle.unpack(_repack(av_bundle, meta), "evil.nf")
    # a larger limit lets the check through; the tensors then do not match that model
    with pytest.raises(NeofieldError, match="corrupted"):
        bundle.unpack(_repack(av_bundle, _meta(av_bundle) | {"model": {**meta["model"], "config": {
            **meta["model"]["config"], "dim": 64, "heads": 2}}}), "evil.nf", limits=Limits.large())


def test_a_decompression_bomb_is_refused_without_inflating_it(av_bundle):
    bomb = zstandard.ZstdCompressor(level=3).compress(bytes(200 << 20))  # 200 MB of zeros in ~6 KB
    assert len(bomb) < 100_000
    with pytest.raises(NeofieldError, match="would inflate to 209,715,200 bytes, more than the 67,108,864"):
        bundle.unpack(bomb, "bomb.nf")
    unsized = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(bytes(200 << 20))
    with pytest.raises(NeofieldError, match="inflates to more than the 67,108,864 bytes allowed"):
        bundle.unpack(unsized, "bomb.nf")
    assert bundle.unpack(_repack(av_bundle, _meta(av_bundle), content_size=False)).kind == "audiovisual"


def test_inconsistent_safetensors_offsets_are_a_corrupted_bundle(av_bundle):
    payload = bytearray(bundle.decompress(av_bundle))
    header_size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + header_size])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 1000
    text = json.dumps(header).encode()
    evil = len(text).to_bytes(8, "little") + text + payload[8 + header_size:]
    with pytest.raises(NeofieldError, match="evil.nf: bundle is corrupted"):
        bundle.unpack(zstandard.ZstdCompressor().compress(bytes(evil)), "evil.nf")


def test_large_limits_are_sixteen_times_the_defaults():
    assert Limits.large().parameters == 16 * Limits().parameters
    assert Limits.large().duration == 16 * Limits().duration


def test_validation_does_not_change_the_metadata(av_bundle):
    meta = _meta(av_bundle)
    before = copy.deepcopy(meta)
    validate(meta)
    assert meta == before
