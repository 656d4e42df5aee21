import json
from pathlib import Path

import pytest
import torch
import zstandard

from neofield import bundle
from neofield.codec import make_field, signal_metadata
from neofield.errors import NeofieldError
from neofield.media import Media, Selection
from neofield.render import evaluate
from neofield.signal import Signal
from tests.conftest import noise_video


@pytest.fixture
def field_and_meta():
    signal = Signal(Media(video=noise_video(2, 4, 6), fps=10.0))
    field = make_field(signal, "tiny", segments=2, seed=1)
    bundle.round_weights(field, "float16")
    meta = signal_metadata(signal, Path("noise.mp4"), Selection())
    meta["weights_dtype"] = "float16"
    return field, meta


def test_bundle_round_trips_byte_exact(field_and_meta, tmp_path):
    field, meta = field_and_meta
    path = tmp_path / "a.nf"
    bundle.save(path, field, meta)
    loaded = bundle.load(path)
    assert bundle.pack(loaded.field, loaded.meta) == path.read_bytes()


def test_decoding_from_the_file_equals_decoding_from_the_model(field_and_meta, tmp_path):
    field, meta = field_and_meta
    path = tmp_path / "a.nf"
    bundle.save(path, field, meta)
    coords = torch.rand(1000, 3) * 2 - 1
    assert torch.equal(evaluate(field.eval(), coords), evaluate(bundle.load(path).field, coords))


def test_rff_bank_is_not_stored_but_regenerated(field_and_meta):
    field, meta = field_and_meta
    loaded = bundle.unpack(bundle.pack(field, meta))
    assert "backbone.rff.freqs" not in field.state_dict()
    assert torch.equal(loaded.field.backbone.rff.freqs, field.backbone.rff.freqs)


def test_weights_are_float16_by_default_and_metadata_is_complete(field_and_meta):
    field, meta = field_and_meta
    payload = zstandard.ZstdDecompressor().decompress(bundle.pack(field, meta))
    header = json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes == {"F16"}
    stored = json.loads(header["__metadata__"]["neofield"])
    for key in ("format_version", "neofield_version", "modality", "geometry", "coordinates", "values", "model",
                "source"):
        assert key in stored


def test_truncated_bundle_is_a_clear_error(field_and_meta, tmp_path):
    field, meta = field_and_meta
    data = bundle.pack(field, meta)
    with pytest.raises(NeofieldError, match="truncated or corrupted"):
        bundle.unpack(data[: len(data) // 2])


def test_corrupted_bundle_is_a_clear_error(field_and_meta):
    field, meta = field_and_meta
    data = bytearray(bundle.pack(field, meta))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(NeofieldError):
        bundle.unpack(bytes(data))


def test_newer_format_version_is_refused(field_and_meta, monkeypatch):
    field, meta = field_and_meta
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 99)
    data = bundle.pack(field, meta)
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 1)
    with pytest.raises(NeofieldError, match="v99, newer"):
        bundle.unpack(data)


def test_other_zstd_data_is_not_a_bundle():
    with pytest.raises(NeofieldError, match="not a neofield bundle"):
        bundle.unpack(zstandard.ZstdCompressor().compress(b"hello world, not safetensors"))


def test_a_quantized_bundle_round_trips_byte_exact_and_decodes_as_the_encoder_measured(field_and_meta, tmp_path):
    field, meta = field_and_meta
    quantized = bundle.round_weights(field, "q8")
    meta = {**meta, "weights_dtype": "q8"}
    bundle.save(tmp_path / "q.nf", field, meta, quantized=quantized)
    loaded = bundle.load(tmp_path / "q.nf")
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == (tmp_path / "q.nf").read_bytes()
    coords = torch.rand(1000, 3) * 2 - 1
    assert torch.equal(evaluate(field.eval(), coords), evaluate(loaded.field, coords))
    payload = zstandard.ZstdDecompressor().decompress((tmp_path / "q.nf").read_bytes())
    header = json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__" and not k.endswith(":quant")} == {"U8"}


def test_a_version_one_bundle_still_loads(field_and_meta, monkeypatch):
    field, meta = field_and_meta
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 1)
    old = bundle.pack(field, meta)
    monkeypatch.undo()
    assert bundle.unpack(old).meta["format_version"] == 1
