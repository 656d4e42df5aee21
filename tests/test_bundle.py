import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import zstandard

from neofield import bundle, entropy, learned_context, streams
from neofield.codec import make_field, signal_metadata
from neofield.errors import NeofieldError
from neofield.media import Media, Selection
from neofield.quantize import BitDepths, quantize
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
    payload = bundle.decompress(bundle.pack(field, meta))
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


def test_a_bundle_is_compressed_under_the_formats_dictionary_which_its_header_costs_less_under(neogrid_and_meta):
    field, meta = neogrid_and_meta
    data = bundle.pack(field, meta)
    payload = bundle.decompress(data)
    without = zstandard.ZstdCompressor(level=bundle.ZSTD_LEVEL, write_content_size=True,
                                       write_checksum=True).compress(payload)
    assert len(data) <= len(without) - 300  # the header's text is in the dictionary
    with pytest.raises(zstandard.ZstdError):  # and the frame refers to it: nothing reads it without
        zstandard.ZstdDecompressor().decompress(data)
    assert bundle.unpack(without).meta["format_version"] == bundle.FORMAT_VERSION  # a frame without it reads too


def test_a_version_five_bundle_written_without_the_dictionary_still_loads(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 5)
    v5 = zstandard.ZstdCompressor(level=19, write_content_size=True, write_checksum=True).compress(
        bundle.decompress(bundle.pack(field, meta)))
    monkeypatch.undo()
    loaded = bundle.unpack(v5)
    assert loaded.meta["format_version"] == 5
    assert all(torch.equal(a, b) for a, b in zip(loaded.field.state_dict().values(),
                                                  bundle.unpack(bundle.pack(field, meta)).field.state_dict().values()))


def test_a_damaged_dictionary_is_a_clear_error(field_and_meta, tmp_path, monkeypatch):
    damaged = tmp_path / "bundle.zdict"
    damaged.write_bytes(bundle.DICTIONARY.read_bytes()[:-1])
    monkeypatch.setattr(bundle, "DICTIONARY", damaged)
    bundle.dictionary.cache_clear()
    try:
        with pytest.raises(NeofieldError, match="bundle.zdict is missing or damaged.*reinstall neofield"):
            bundle.pack(*field_and_meta)
    finally:
        bundle.dictionary.cache_clear()


def _header(data: bytes) -> dict:
    payload = bundle.decompress(data)
    return json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])


def test_a_quantized_bundle_round_trips_byte_exact_and_decodes_as_the_encoder_measured(field_and_meta, tmp_path):
    field, meta = field_and_meta
    quantized = bundle.round_weights(field, "quantized", BitDepths(5, 4))
    meta = {**meta, "weights_dtype": "quantized"}
    bundle.save(tmp_path / "q.nf", field, meta, quantized=quantized)
    loaded = bundle.load(tmp_path / "q.nf")
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == (tmp_path / "q.nf").read_bytes()
    coords = torch.rand(1000, 3) * 2 - 1
    assert torch.equal(evaluate(field.eval(), coords), evaluate(loaded.field, coords))
    assert {q.levels for k, q in loaded.quantized.items() if k.startswith("latents.")} == {16}
    assert {q.levels for k, q in loaded.quantized.items() if not k.startswith("latents.")} == {32}
    header = _header((tmp_path / "q.nf").read_bytes())
    assert sorted(k for k in header if k != "__metadata__") == [
        "backbone.levels", "backbone.params", "backbone.stream", "latents.levels", "latents.params", "latents.stream"]
    split = bundle.stored_bytes((tmp_path / "q.nf").read_bytes())
    assert split["backbone"] == header["backbone.stream"]["data_offsets"][1] - header["backbone.stream"]["data_offsets"][0]
    assert split["backbone"] + split["latents"] + split["side"] == (tmp_path / "q.nf").stat().st_size


def test_a_quantized_bundle_is_much_smaller_than_float16(field_and_meta):
    field, meta = field_and_meta
    half = len(bundle.pack(field, meta))
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6))
    assert len(bundle.pack(field, {**meta, "weights_dtype": "quantized"}, quantized)) < half / 2


def test_damaged_quantization_parameters_are_a_clear_error(field_and_meta, monkeypatch):
    field, meta = field_and_meta
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6))
    bad = {k: dataclasses.replace(q, levels=1) for k, q in quantized.items()}
    monkeypatch.setattr(bundle.entropy, "encode", lambda symbols, models: b"")  # levels 1 cannot be coded
    data = bundle.pack(field, {**meta, "weights_dtype": "quantized"}, bad)
    with pytest.raises(NeofieldError, match="corrupted"):
        bundle.unpack(data)


def test_a_version_two_eight_bit_bundle_still_loads(field_and_meta):
    field, meta = field_and_meta
    tensors = {}
    for name, t in field.state_dict().items():
        q = quantize(t.numpy(), 8)
        tensors[name] = torch.from_numpy(q.symbols.astype(np.uint8))
        tensors[name + ":quant"] = torch.tensor([float(q.scale), float(q.offset)])
    meta = {**meta, "format_version": 2, "weights_dtype": "q8",
            "model": {"type": "neomlp", "config": field.config.to_dict(), "segmentation": field.layout.to_dict()}}
    v2 = zstandard.ZstdCompressor().compress(safetensors.torch.save(tensors, {"neofield": json.dumps(meta)}))
    loaded = bundle.unpack(v2)
    for name, t in field.state_dict().items():
        assert torch.allclose(loaded.field.state_dict()[name], t, atol=float((t.max() - t.min()) / 255 / 2 + 1e-6))


def test_a_version_one_bundle_still_loads(field_and_meta, monkeypatch):
    field, meta = field_and_meta
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 1)
    old = bundle.pack(field, meta)
    monkeypatch.undo()
    assert bundle.unpack(old).meta["format_version"] == 1


@pytest.mark.parametrize("arch", ["siren", "spder", "rffnet"])
@pytest.mark.parametrize("dtype", ["quantized", "float16"])
def test_the_papers_baselines_round_trip_through_the_same_bundle(field_and_meta, arch, dtype):
    from neofield.fields.baselines import RFFNet, RFFNetConfig, Siren, SirenConfig, Spder

    _, meta = field_and_meta
    torch.manual_seed(0)
    field = {"siren": lambda: Siren(SirenConfig(3, 3, width=24, layers=3)),
             "spder": lambda: Spder(SirenConfig(3, 3, width=24, layers=3)),
             "rffnet": lambda: RFFNet(RFFNetConfig(3, 3, width=24, layers=3, rff_dim=16, rff_sigma=(2.0, 2.0, 1.0)))
             }[arch]()
    symbols = bundle.round_weights(field, dtype)
    data = bundle.pack(field, {**meta, "weights_dtype": dtype}, symbols)
    loaded = bundle.unpack(data)
    assert type(loaded.field) is type(field) and loaded.meta["model"]["type"] == arch
    assert "segmentation" not in loaded.meta["model"]
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == data  # byte-exact
    coords = torch.rand(500, 3) * 2 - 1
    assert torch.equal(evaluate(field.eval(), coords), evaluate(loaded.field, coords))


def test_quantization_parameters_that_would_dequantize_past_float32_are_a_corrupted_bundle(field_and_meta):
    field, meta = field_and_meta
    data = bundle.pack(field, {**meta, "weights_dtype": "quantized"})
    payload = bundle.decompress(data)
    tensors = safetensors.torch.load(payload)
    tensors["latents.params"][0, 0] = 3e38  # scale: level 63 would be 1.9e40
    stored = json.loads(payload[8:8 + int.from_bytes(payload[:8], "little")])["__metadata__"]
    evil = zstandard.ZstdCompressor().compress(safetensors.torch.save(tensors, stored))
    with pytest.raises(NeofieldError, match="evil.nf: bundle is corrupted .*invalid quantization parameters"):
        bundle.unpack(evil, "evil.nf")


@pytest.fixture
def neogrid_and_meta():
    from neofield.codec.build import neogrid_field

    signal = Signal(Media(video=noise_video(4, 16, 24), fps=10.0))
    torch.manual_seed(0)
    field = neogrid_field(signal, 3_000)
    with torch.no_grad():  # coarse levels wide, fine ones narrow, as a fit leaves them
        for i, (a, b) in enumerate(field.layout.spans()):
            field.latents.table[a:b] = torch.randn(b - a, 1, 2) * 2.0 ** -i
    meta = signal_metadata(signal, Path("noise.mp4"), Selection())
    meta["weights_dtype"] = "quantized"
    return field, meta


def test_a_pyramids_latents_are_coded_level_by_level_and_channel_by_channel(neogrid_and_meta):
    field, meta = neogrid_and_meta
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6))
    data = bundle.pack(field, meta, quantized)
    tensors = safetensors.torch.load(bundle.decompress(data))
    contexts = tensors["latents.contexts"]
    assert contexts.shape == (len(field.layout.spans()) * field.layout.channels,)
    assert tensors["latents.models"].shape == (sum(entropy.MODELS[int(c)] for c in contexts), 2)
    loaded = bundle.unpack(data)
    assert loaded.meta["format_version"] == bundle.FORMAT_VERSION
    assert np.array_equal(loaded.quantized["latents.table"].symbols, quantized["latents.table"].symbols)
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == data  # byte exact
    whole = {k: dataclasses.replace(q, blocks=None) for k, q in quantized.items()}  # v3's one Gaussian
    assert streams.coded_bytes(quantized)["latents"] < 0.9 * streams.coded_bytes(whole)["latents"]


def test_damaged_block_models_are_a_clear_error(neogrid_and_meta):
    field, meta = neogrid_and_meta
    data = bundle.pack(field, meta, bundle.round_weights(field, "quantized", BitDepths(6, 6)))
    tensors = safetensors.torch.load(bundle.decompress(data))
    stored_meta = json.loads(_header(data)["__metadata__"]["neofield"])
    for bad in (tensors["latents.models"][:-1], tensors["latents.models"] * 0, tensors["latents.models"] + 70_000):
        damaged = {**tensors, "latents.models": bad.contiguous()}
        payload = safetensors.torch.save(damaged, {"neofield": json.dumps(stored_meta, sort_keys=True)})
        with pytest.raises(NeofieldError, match="corrupted"):
            bundle.unpack(zstandard.ZstdCompressor().compress(payload))


def _clustered_latents(field) -> None:
    """Each level of the table still on its left two thirds and busy on its right, as a fit leaves a clip
    whose motion is in one place: what a model in context codes in fewer bits."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for (a, b), shape in zip(field.layout.spans(), field.layout.block_shapes()[::field.layout.channels]):
            values = torch.distributions.Laplace(0.0, 0.01).sample((b - a, 1, 2))
            busy = (torch.arange(b - a) % shape[-1]) >= 2 * shape[-1] // 3
            values[busy] = torch.randn(int(busy.sum()), 1, 2, generator=g)
            field.latents.table[a:b] = values


def test_clustered_latents_are_coded_in_context_and_come_back_exactly(neogrid_and_meta):
    field, meta = neogrid_and_meta
    _clustered_latents(field)
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2)
    data = bundle.pack(field, meta, quantized)
    contexts = safetensors.torch.load(bundle.decompress(data))["latents.contexts"]
    assert contexts.sum() > 0
    loaded = bundle.unpack(data)
    assert np.array_equal(loaded.quantized["latents.table"].symbols, quantized["latents.table"].symbols)
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == data
    flat = {k: dataclasses.replace(q, block_shapes=None) for k, q in quantized.items()}  # no grid, no neighbours
    assert streams.coded_bytes(quantized)["latents"] < streams.coded_bytes(flat)["latents"]


def _smooth_latents(field) -> None:
    """Each level of the table a slow wave, as a fit leaves a smooth picture: what predictions code best."""
    with torch.no_grad():
        for (a, b), shape in zip(field.layout.spans(), field.layout.block_shapes()[::field.layout.channels]):
            t, y, x = (i.ravel().float() for i in torch.meshgrid(*(torch.arange(n) for n in shape), indexing="ij"))
            wave = torch.sin(x / 3.0 + t / 2.0) * torch.cos(y / 4.0)
            field.latents.table[a:b] = torch.stack([wave, -wave], -1)[:, None, :]


def test_smooth_latents_are_coded_plane_by_plane_and_come_back_exactly(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    _smooth_latents(field)
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2)
    data = bundle.pack(field, meta, quantized)
    tensors = safetensors.torch.load(bundle.decompress(data))
    assert (tensors["latents.contexts"] == entropy.WAVEFRONT).any()
    loaded = bundle.unpack(data)
    assert np.array_equal(loaded.quantized["latents.table"].symbols, quantized["latents.table"].symbols)
    assert bundle.pack(loaded.field, loaded.meta, loaded.quantized) == data
    real = entropy.best_block
    monkeypatch.setattr(bundle.entropy, "best_block", lambda s, shape, levels: real(
        s, shape, levels, (entropy.WHOLE, entropy.CHECKERBOARD)))  # v5's coder
    v5 = streams.coded_bytes(quantized)["latents"]
    monkeypatch.undo()
    assert streams.coded_bytes(quantized)["latents"] < 0.8 * v5
    # a version 5 bundle cannot hold a block coded plane by plane: one that says so is damaged
    stored_meta = {**json.loads(_header(data)["__metadata__"]["neofield"]), "format_version": 5}
    payload = safetensors.torch.save(tensors, {"neofield": json.dumps(stored_meta, sort_keys=True)})
    with pytest.raises(NeofieldError, match="corrupted.*flags of 0, 1"):
        bundle.unpack(zstandard.ZstdCompressor().compress(payload))


def _context_ready(neogrid_and_meta, monkeypatch) -> tuple:
    """A field, its metadata and its symbols, with a learned context's thresholds lowered for a small field and
    its weights counted at nothing where a group's coding is estimated: a context given is kept wherever a block
    takes it."""
    field, meta = neogrid_and_meta
    _smooth_latents(field)
    with torch.no_grad():
        field.latents.table.add_(torch.randn_like(field.latents.table) * 0.3)
    monkeypatch.setattr(learned_context, "MIN_STREAM_BYTES", 100)
    monkeypatch.setattr(learned_context, "TRAIN_STEPS", 150)
    monkeypatch.setattr(streams, "CONTEXT_SIDE_BYTES", 0)
    return field, meta, bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2)


def _learned(neogrid_and_meta, monkeypatch) -> tuple[bytes, dict, dict]:
    """A bundle whose latents are coded under a learned context, its tensors and its metadata."""
    field, meta, quantized = _context_ready(neogrid_and_meta, monkeypatch)
    data = bundle.pack(field, meta, quantized, streams.learned_contexts(quantized))
    return data, safetensors.torch.load(bundle.decompress(data)), json.loads(_header(data)["__metadata__"]["neofield"])


def test_latents_coded_under_a_learned_context_come_back_exactly(neogrid_and_meta, monkeypatch):
    data, tensors, _ = _learned(neogrid_and_meta, monkeypatch)
    assert (tensors["latents.contexts"] == entropy.LEARNED).any()
    assert tensors["latents.context"].dtype == torch.int16 and tensors["latents.context"].shape == (
        learned_context.WEIGHTS,)
    loaded = bundle.unpack(data)
    again = bundle.pack(loaded.field, loaded.meta, loaded.quantized, streams.learned_contexts(loaded.quantized))
    assert again == data  # trained again, to the same weights


def test_a_stream_too_short_for_a_context_to_pay_trains_none(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    _smooth_latents(field)

    def refuse(*_, **__):
        raise AssertionError("trained a context for a short stream")

    monkeypatch.setattr(learned_context, "train", refuse)
    data = bundle.pack(field, meta, bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2))
    assert "latents.context" not in safetensors.torch.load(bundle.decompress(data))


def test_a_learned_context_is_kept_only_where_the_bundle_comes_out_smaller(neogrid_and_meta, monkeypatch):
    field, meta, quantized = _context_ready(neogrid_and_meta, monkeypatch)  # the estimate would keep any context
    plain = bundle.pack(field, meta, quantized, {})
    learned = bundle.pack(field, meta, quantized, streams.learned_contexts(quantized))
    assert len(plain) != len(learned)
    chosen = bundle.pack(field, meta, quantized)
    assert chosen == min(plain, learned, key=len)
    assert ("latents.context" in safetensors.torch.load(bundle.decompress(chosen))) == (len(learned) < len(plain))


def test_a_damaged_learned_context_is_a_clear_error(neogrid_and_meta, monkeypatch):
    _, tensors, stored_meta = _learned(neogrid_and_meta, monkeypatch)
    weights = tensors["latents.context"]
    no_learned = tensors["latents.contexts"].clone()
    no_learned[no_learned == entropy.LEARNED] = entropy.WHOLE
    cases = {"no learned context": {k: v for k, v in tensors.items() if k != "latents.context"},
             "not 3": {**tensors, "latents.context": weights[:3].contiguous()},
             "not int16": {**tensors, "latents.context": weights.float()},
             "a learned context, where no": {**tensors, "latents.contexts": no_learned}}
    for message, damaged in cases.items():
        payload = safetensors.torch.save(damaged, {"neofield": json.dumps(stored_meta, sort_keys=True)})
        with pytest.raises(NeofieldError, match=f"corrupted.*{message}"):
            bundle.unpack(zstandard.ZstdCompressor().compress(payload))
    # a version 6 bundle cannot hold a block coded under a learned context: one that says so is damaged
    payload = safetensors.torch.save(tensors, {"neofield": json.dumps({**stored_meta, "format_version": 6})})
    with pytest.raises(NeofieldError, match="corrupted.*flags of 0, 1, 2"):
        bundle.unpack(zstandard.ZstdCompressor().compress(payload))


def test_damaged_block_contexts_are_a_clear_error(neogrid_and_meta):
    field, meta = neogrid_and_meta
    _clustered_latents(field)
    data = bundle.pack(field, meta, bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2))
    tensors = safetensors.torch.load(bundle.decompress(data))
    stored_meta = json.loads(_header(data)["__metadata__"]["neofield"])
    flags = tensors["latents.contexts"]
    for bad in (flags[:-1], flags + 2, 1 - flags, None):
        damaged = {**tensors, "latents.contexts": bad.contiguous()} if bad is not None else \
            {k: v for k, v in tensors.items() if k != "latents.contexts"}
        payload = safetensors.torch.save(damaged, {"neofield": json.dumps(stored_meta, sort_keys=True)})
        with pytest.raises(NeofieldError, match="corrupted"):
            bundle.unpack(zstandard.ZstdCompressor().compress(payload))


def test_a_version_four_bundle_with_every_block_whole_still_loads(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    _clustered_latents(field)
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6), latent_step=0.2)
    # v4 wrote each block under one Laplace and no contexts tensor
    def whole(s, shape, levels, codings=entropy.CODINGS, context=None):
        model = entropy.LaplaceModel.fit(s, levels)
        return entropy.BlockCode(model.bits(s), entropy.WHOLE, [model], [(np.asarray(s).ravel(), model)])

    monkeypatch.setattr(bundle.entropy, "best_block", whole)
    data = bundle.pack(field, meta, quantized)
    monkeypatch.undo()
    tensors = safetensors.torch.load(bundle.decompress(data))
    stored_meta = {**json.loads(_header(data)["__metadata__"]["neofield"]), "format_version": 4}
    v4 = {k: v for k, v in tensors.items() if k != "latents.contexts"}
    payload = safetensors.torch.save(v4, {"neofield": json.dumps(stored_meta, sort_keys=True)})
    loaded = bundle.unpack(zstandard.ZstdCompressor().compress(payload))
    assert loaded.meta["format_version"] == 4
    assert np.array_equal(loaded.quantized["latents.table"].symbols, quantized["latents.table"].symbols)
    again = bundle.unpack(bundle.pack(loaded.field, loaded.meta, loaded.quantized))  # saved again, as v7
    assert np.array_equal(again.quantized["latents.table"].symbols, quantized["latents.table"].symbols)


def test_a_version_three_pyramid_bundle_with_one_gaussian_for_its_latents_still_loads(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    quantized = bundle.round_weights(field, "quantized", BitDepths(6, 6))
    monkeypatch.setattr(bundle, "FORMAT_VERSION", 3)
    v3 = bundle.pack(field, meta, {k: dataclasses.replace(q, blocks=None) for k, q in quantized.items()})
    monkeypatch.undo()
    assert "latents.models" not in safetensors.torch.load(bundle.decompress(v3))
    loaded = bundle.unpack(v3)
    assert loaded.meta["format_version"] == 3
    assert np.array_equal(loaded.quantized["latents.table"].symbols, quantized["latents.table"].symbols)


def test_block_models_whose_tables_would_take_too_much_memory_are_refused(neogrid_and_meta, monkeypatch):
    field, meta = neogrid_and_meta
    data = bundle.pack(field, meta, bundle.round_weights(field, "quantized", BitDepths(6, 6)))
    monkeypatch.setattr(bundle.entropy, "MAX_TABLE_ENTRIES", 64)  # the real limit takes a huge model to reach
    with pytest.raises(NeofieldError, match="corrupted .*more than the 64 allowed"):
        bundle.unpack(data)
