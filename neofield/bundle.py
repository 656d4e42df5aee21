"""The ``.nf`` bundle: the container layer of the bitstream.

field -> quantizer (:mod:`neofield.quantize`) -> entropy coder
(:mod:`neofield.entropy`) -> **container**: a safetensors file (tensors +
JSON metadata) compressed with zstandard, under a dictionary of what every
bundle's header says alike (format v6, :func:`dictionary`). By default the weights are stored
as range-coded quantized symbols (``weights_dtype`` ``quantized``, format v3 on);
float16/bfloat16/float32 checkpoints remain an option. ``docs/format.md``
describes it for readers in other languages. Writing is deterministic, so a
bundle that is loaded and saved again is byte-for-byte the same file.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import zstandard
from torch import nn

from . import __version__, entropy, learned_context
from .streams import GROUPS, CodedGroup, code_groups, codings, group_names, group_of
from .errors import NeofieldError
from .fields import layouts
from .fields.neomlp import NeoMLPField
from .fields.pyramid import PyramidLayout
from .fields.registry import arch_of, build, config_from_dict
from .files import atomic_output
from .qat import QuantizationAware
from .quantize import (QUANTIZED, STORAGE_DTYPES, BitDepths, QuantizedTensor, levels_for, quantize,  # noqa: F401
                       quantize_step, storage_bits)
from .schema import DEFAULT_LIMITS, Limits, validate

# v8: a pyramid may read its finest levels at taps (``model.segmentation.pyramids[].taps``); v7: a group's
# latent blocks may be coded under its learned context (``latents.context``); v6: the zstd frame
# is compressed under the format's dictionary (:func:`dictionary`); v5: a pyramid level's
# block may be coded in context (``latents.contexts``); v4: a pyramid's latents coded level by level and channel
# by channel (``latents.models``); v3: range-coded quantized weights ("quantized"); every older version still loads
FORMAT_VERSION = 8
BLOCKS_SINCE = 4
CONTEXTS_SINCE = 5
WAVEFRONT_SINCE = 6
LEARNED_SINCE = 7
ZSTD_LEVEL = 19
DICTIONARY = Path(__file__).with_name("bundle.zdict")
DICTIONARY_SHA256 = "a350ea6ff34f0263c54b980cfa784f569591ce3d7f478d679196a77627de7ce0"
WEIGHT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
LEGACY_Q8 = "q8"  # format v2: uint8 symbols under NAME, [scale, offset] under NAME + ":quant"
METADATA_KEY = "neofield"


QAT_FRACTION = 0.1
"""The last 10 % of a quantized fit's steps take the loss at the quantized weights (straight-through). On the
demo clip at 6 bits this recovers the whole -1.08 dB that rounding alone costs (docs/format.md)."""


def quantization_aware(field: nn.Module, bits: BitDepths | Callable[[nn.Module], BitDepths],
                       fraction: float = QAT_FRACTION) -> QuantizationAware:
    """Finetune the end of a fit at the levels each parameter will be stored with: ``bits``, or the depths a
    function of the field chooses when finetuning starts (rate control searches them on the field as it is)."""
    def levels(depths: BitDepths) -> dict[str, int]:
        return {name: levels_for(depths.for_group(group_of(name))) for name, _ in field.named_parameters()}

    if callable(bits):
        return QuantizationAware(lambda f: levels(bits(f)), fraction)
    return QuantizationAware(levels(bits), fraction)


@dataclass
class Bundle:
    """A decoded bundle: the field, ready to evaluate, and its metadata. The field is a
    :class:`NeoMLPField`, or one of the paper's baselines (``meta["model"]["type"]``)."""

    field: NeoMLPField
    meta: dict
    quantized: dict[str, QuantizedTensor] | None = None  # the stored symbols, for a quantized bundle

    @property
    def kind(self) -> str:
        return self.meta["modality"]


def round_weights(field: NeoMLPField, dtype: str, bits: BitDepths | None = None,
                  latent_step: float | None = None) -> dict[str, QuantizedTensor] | None:
    """Round the field's parameters to the bundle's storage precision, in place.

    Done right after fitting, so that what the encoder measures is exactly
    what any decoder of the file will compute. For ``quantized`` the symbols
    are returned: :func:`pack` stores exactly those; ``latent_step``: a
    pyramid's latents at that step (a fit with a rate term).
    """
    if dtype == QUANTIZED:
        quantized = quantize_state(field, bits or BitDepths(), latent_step)
        _load_quantized(field, quantized)
        return quantized
    target = WEIGHT_DTYPES[dtype]
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(p.to(target).to(p.dtype))
    return None


def latent_blocks(field: nn.Module) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """The blocks a field's latents are entropy coded in (format v4): a pyramid's table by level and channel,
    whose symbols spread differently (the coarse levels wide, the fine ones narrow); other tensors whole."""
    layout = getattr(field, "layout", None)
    return {"latents.table": layout.blocks()} if isinstance(layout, PyramidLayout) else {}


def latent_shapes(field: nn.Module) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Each of :func:`latent_blocks`' blocks' grid, where a node's neighbours lie (format v5's contexts)."""
    layout = getattr(field, "layout", None)
    return {"latents.table": layout.block_shapes()} if isinstance(layout, PyramidLayout) else {}


def quantize_state(field: NeoMLPField, bits: BitDepths, latent_step: float | None = None
                   ) -> dict[str, QuantizedTensor]:
    """Every tensor of the field quantized per tensor at its group's depth; with ``latent_step``, a pyramid's
    latents at that step instead."""
    blocks, shapes = latent_blocks(field), latent_shapes(field)

    def one(name: str, values: np.ndarray) -> QuantizedTensor:
        if latent_step is not None and name in blocks:
            return quantize_step(values, latent_step)
        return quantize(values, bits.for_group(group_of(name)))

    return {name: dataclasses.replace(one(name, t.detach().cpu().float().numpy()), blocks=blocks.get(name),
                                      block_shapes=shapes.get(name))
            for name, t in field.state_dict().items()}


@functools.cache
def dictionary() -> zstandard.ZstdCompressionDict:
    """The zstd dictionary a bundle is compressed under (format v6 on): the headers of a few bundles, which a
    bundle's own header repeats but for its numbers (its tensors' names, the metadata's keys), laid before its
    bytes for zstd to refer back to. A bundle's metadata and headers took ~960 bytes alone, 14 % of a 7 KB
    bundle of 2 s of bikes; under the dictionary ~240 (docs/format.md). ``scripts/make_bundle_dictionary.py``
    made it; a bundle can only be read with the very bytes it was written with, so it never changes (a new
    one would be a new format version), and a copy that is not those bytes is refused. Frames written without
    it (v5 and older) read the same with it: nothing in them refers back past their own start."""
    data = DICTIONARY.read_bytes() if DICTIONARY.is_file() else b""
    if hashlib.sha256(data).hexdigest() != DICTIONARY_SHA256:
        raise NeofieldError(f"{DICTIONARY} is missing or damaged (it is not the dictionary bundles are written "
                            "with): reinstall neofield")
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def compress(payload: bytes) -> bytes:
    """The bundle's bytes from its safetensors bytes: one zstd frame under :func:`dictionary`, its size and
    checksum stated."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=dictionary(), write_content_size=True,
                                    write_checksum=True).compress(payload)


def _load_quantized(field: NeoMLPField, quantized: dict[str, QuantizedTensor]) -> None:
    field.load_state_dict({k: torch.from_numpy(q.dequantize()) for k, q in quantized.items()}, strict=True)


def pack(field: NeoMLPField, meta: dict, quantized: dict[str, QuantizedTensor] | None = None,
         contexts: dict[str, np.ndarray | None] | None = None) -> bytes:
    """Serialise a field and its metadata to bundle bytes. A quantized bundle stores ``quantized`` (by default
    the field's weights at the metadata's bit depths) under ``contexts`` where given (:func:`code_groups`
    keeps each where it estimates the group smaller); else under learned contexts where the whole bundle
    comes out smaller with them than without, packed both ways."""
    model = {"type": arch_of(field), "config": field.config.to_dict()}
    if hasattr(field, "layout"):  # NeoMLP's latent sets; the baselines have none
        model["segmentation"] = layouts.metadata(field.layout)  # the layout, under its historic name
    meta = {**meta, "format_version": FORMAT_VERSION, "model": model}
    if meta["weights_dtype"] != QUANTIZED:
        dtype = WEIGHT_DTYPES[meta["weights_dtype"]]
        tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in field.state_dict().items()}
        return _container(tensors, meta)
    if quantized is None:
        quantized = quantize_state(field, BitDepths(**meta.get("quantization", {}).get("bits", {})))
    if contexts is not None:
        return _container(_coded_tensors(quantized, code_groups(quantized, contexts)), meta)
    # a context's weights, the models it spares and the stream all pass through zstd: decided on the bytes (the
    # first, without a context, where both come out the same)
    return min((_container(_coded_tensors(quantized, coded), meta) for coded in codings(quantized)), key=len)


def _container(tensors: dict[str, torch.Tensor], meta: dict) -> bytes:
    return compress(safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)}))


def _coded_tensors(quantized: dict[str, QuantizedTensor], groups: dict[str, CodedGroup]) -> dict[str, torch.Tensor]:
    """What a quantized bundle stores of its coded ``groups``: each one's stream, its tensors' dequantizers and
    levels, its blocks' models and codings, and its learned context where it was coded under one."""
    tensors = {}
    for group, coded in groups.items():
        names, stream = coded.names, coded.stream
        tensors[f"{group}.stream"] = torch.frombuffer(bytearray(stream), dtype=torch.uint8) if stream \
            else torch.zeros(0, dtype=torch.uint8)
        # per tensor: scale, offset (the dequantizer), mean, std (its Gaussian; 0, 1 for a tensor coded in
        # blocks); and the levels
        tensors[f"{group}.params"] = torch.tensor(
            [[float(quantized[n].scale), float(quantized[n].offset), m.mean if m else 0.0, m.std if m else 1.0]
             for n, m in zip(names, coded.gaussians)], dtype=torch.float32).reshape(len(names), 4)
        tensors[f"{group}.levels"] = torch.tensor([quantized[n].levels for n in names], dtype=torch.int32)
        if coded.blocks:  # per model of a block: its Laplace's centre and decay
            tensors[f"{group}.models"] = torch.tensor([[m.centre, m.decay] for m in coded.blocks],
                                                      dtype=torch.int32)
        if coded.contexts:  # per block: how it is coded
            tensors[f"{group}.contexts"] = torch.tensor(coded.contexts, dtype=torch.int32)
        if coded.context is not None:
            tensors[f"{group}.context"] = torch.from_numpy(coded.context.astype(np.int16))
    return tensors


def decompress(data: bytes, name: str = "bundle", limit: int = DEFAULT_LIMITS.payload_bytes) -> bytes:
    """The bundle's safetensors bytes, never more than ``limit`` of them.

    The size the zstd frame header states is checked before anything is
    allocated, and a frame that states none is inflated with ``limit`` as its
    ceiling, so a few KB that would inflate to gigabytes (a decompression bomb)
    are refused at once.
    """
    if not data:
        raise NeofieldError(f"{name} is empty")
    not_ours = f"{name} is not a neofield bundle, or it is truncated or corrupted"
    try:
        stated = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        raise NeofieldError(not_ours) from None
    if stated > limit:
        raise NeofieldError(f"{name} would inflate to {stated:,} bytes, more than the {limit:,} allowed "
                            "(--allow-large raises the limit for a bundle you trust)")
    try:
        return zstandard.ZstdDecompressor(dict_data=dictionary()).decompress(data, max_output_size=limit)
    except zstandard.ZstdError:
        if stated < 0:  # no size in the header: either corrupt, or more than the ceiling
            raise NeofieldError(f"{not_ours} (or it inflates to more than the {limit:,} bytes allowed)") from None
        raise NeofieldError(not_ours) from None


def unpack(data: bytes, name: str = "bundle", limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Parse bundle bytes; every way they can be wrong is one clear error.

    The metadata is checked against :mod:`neofield.schema` (types, ranges, the
    model's size under ``limits``) before the model is built, and the tensors
    against the model's shapes before they are loaded.
    """
    payload = decompress(data, name, limits.payload_bytes)
    meta = _read_metadata(payload, name)
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise NeofieldError(f"{name}: bundle metadata has no format version")
    if version > FORMAT_VERSION:
        raise NeofieldError(f"{name} is bundle format v{version}, newer than this neofield ({__version__}) "
                            f"reads (v{FORMAT_VERSION}); upgrade neofield")
    validate(meta, name, limits)
    try:
        model = meta["model"]
        arch = model.get("type", "neomlp")
        field = build(arch, config_from_dict(arch, model["config"]), model.get("segmentation"))
        tensors = safetensors.torch.load(payload)
        quantized = None
        if meta.get("weights_dtype") == QUANTIZED:
            quantized = _decode_groups(field, tensors, latent_blocks(field) if version >= BLOCKS_SINCE else {},
                                       latent_shapes(field), _codings(version))
            _load_quantized(field, quantized)
        elif meta.get("weights_dtype") == LEGACY_Q8:
            quantized = {k: QuantizedTensor(v.numpy().astype(np.int32), np.float32(tensors[k + ":quant"][0]),
                                            np.float32(tensors[k + ":quant"][1]), 256)
                         for k, v in tensors.items() if not k.endswith(":quant")}
            _load_quantized(field, quantized)
        else:
            field.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError, AssertionError,
            safetensors.SafetensorError) as exc:  # AssertionError: the range decoder meeting invalid data
        raise NeofieldError(f"{name}: bundle is corrupted ({_short(exc)})") from None
    if not all(torch.isfinite(p).all() for p in field.parameters()):
        raise NeofieldError(f"{name}: bundle is corrupted (weights that are not finite numbers)")
    field.eval()
    return Bundle(field=field, meta=meta, quantized=quantized)


def _decode_groups(field: NeoMLPField, tensors: dict[str, torch.Tensor],
                   blocks: dict[str, tuple[tuple[int, int, int], ...]],
                   grids: dict[str, tuple[tuple[int, ...], ...]], codings_allowed: tuple[int, ...]
                   ) -> dict[str, QuantizedTensor]:
    """The stored symbols of every tensor. ``blocks``: the tensors coded in blocks (v4 on); ``grids``: their
    blocks' grids; ``codings_allowed``: how the bundle's version may code a block (:func:`_codings`).
    The symbols keep their grids whatever the version, so a bundle saved again is coded in context."""
    shapes = {name: tuple(t.shape) for name, t in field.state_dict().items()}
    quantized = {}
    for group in GROUPS:
        names = group_names(shapes, group)
        params, levels = tensors[f"{group}.params"].numpy(), tensors[f"{group}.levels"].numpy()
        if params.shape != (len(names), 4) or levels.shape != (len(names),):
            raise ValueError(f"{group}: quantization tables of shape {tuple(params.shape)} and "
                             f"{tuple(levels.shape)}, where the model's {len(names)} tensors need "
                             f"({len(names)}, 4) and ({len(names)},)")
        # every level must dequantize to a finite float32: offset + scale * (levels - 1), in float64
        top = np.abs(params[:, 1].astype(np.float64)) + np.abs(params[:, 0].astype(np.float64)) * (levels - 1)
        if len(names) and (levels.min() < 2 or levels.max() > 1 << 16 or not np.isfinite(params).all()
                           or (params[:, 3] <= 0).any() or not (top < 3e38).all()):
            raise ValueError(f"{group}: invalid quantization parameters")
        codings = _block_codings(tensors, group, sum(len(blocks.get(n, ())) for n in names), codings_allowed)
        context = _stored_context(tensors, group, entropy.LEARNED in codings)
        counts = np.array([entropy.MODELS[c] for c in codings], np.int64)
        stored = tensors[f"{group}.models"].numpy() if f"{group}.models" in tensors else np.zeros((0, 2), np.int32)
        if stored.shape != (int(counts.sum()), 2):
            raise ValueError(f"{group}: block models of shape {tuple(stored.shape)}, where the model's blocks "
                             f"need ({int(counts.sum())}, 2)")
        per_tensor = iter(np.split(np.arange(len(codings)), np.cumsum([len(blocks.get(n, ())) for n in names])[:-1]))
        entries = sum(sum(entropy.MODELS[codings[i]] * entropy.alphabet(codings[i], int(lv)) for i in at)
                      for at, lv in zip(per_tensor, levels))
        if entries > entropy.MAX_TABLE_ENTRIES:
            raise ValueError(f"{group}: block models with tables of {entries:,} symbols, more than the "
                             f"{entropy.MAX_TABLE_ENTRIES:,} allowed")
        reader = entropy.Reader(tensors[f"{group}.stream"].numpy().tobytes())
        models = iter(stored)  # LaplaceModel checks each block's centre and decay
        block_codings = iter(codings)
        for n, p, lv in zip(names, params, levels):
            if n in blocks:
                flat = np.zeros((shapes[n][0], int(np.prod(shapes[n][1:], dtype=np.int64))), np.int32)
                for (a, b, c), grid in zip(blocks[n], grids[n], strict=True):
                    coding = next(block_codings)
                    laplace = [entropy.LaplaceModel(int(centre), int(decay), entropy.alphabet(coding, int(lv)))
                               for centre, decay in (next(models) for _ in range(entropy.MODELS[coding]))]
                    flat[a:b, c] = entropy.read_block(reader, coding, laplace, grid, int(lv), context)
                s = flat
            else:
                s = reader.read(entropy.GaussianModel(float(p[2]), float(p[3]), int(lv)),
                                int(np.prod(shapes[n], dtype=np.int64))).reshape(shapes[n])
            quantized[n] = QuantizedTensor(s.reshape(shapes[n]), np.float32(p[0]), np.float32(p[1]), int(lv),
                                           blocks=blocks.get(n), block_shapes=grids.get(n) if n in blocks else None)
    return quantized


def _codings(version: int) -> tuple[int, ...]:
    """The codings of a block a bundle of ``version`` may use: whole alone before v5, no wavefront before v6, no
    learned context before v7."""
    if version < CONTEXTS_SINCE:
        return (entropy.WHOLE,)
    return entropy.CODINGS[:2 + (version >= WAVEFRONT_SINCE) + (version >= LEARNED_SINCE)]


def _stored_context(tensors: dict[str, torch.Tensor], group: str, used: bool) -> list[np.ndarray] | None:
    """The group's learned context's layers, which a block coded under it needs (and only then is one stored)."""
    name = f"{group}.context"
    if used != (name in tensors):
        raise ValueError(f"{group}: {'no' if used else 'a'} learned context, where {'a' if used else 'no'} block "
                         "is coded under one")
    if not used:
        return None
    weights = tensors[name]
    if weights.dtype != torch.int16:
        raise ValueError(f"{group}: a learned context of {weights.dtype}, not int16")
    return learned_context.unpack(weights.numpy())


def _block_codings(tensors: dict[str, torch.Tensor], group: str, n_blocks: int, allowed: tuple[int, ...]
                   ) -> np.ndarray:
    """How each of a group's ``n_blocks`` blocks is coded (:data:`entropy.CODINGS`), from its ``contexts`` flags;
    ``allowed``: the codings the bundle's version knows (:func:`_codings`)."""
    name = f"{group}.contexts"
    if allowed == (entropy.WHOLE,) or name not in tensors:
        if len(allowed) > 1 and n_blocks:
            raise ValueError(f"{group}: no {name} for its {n_blocks} blocks")
        return np.full(n_blocks, entropy.WHOLE, np.int64)
    flags = tensors[name].numpy()
    if flags.shape != (n_blocks,) or not np.isin(flags, allowed).all():
        raise ValueError(f"{group}: block contexts of shape {tuple(flags.shape)}, where the model's blocks need "
                         f"({n_blocks},) flags of {', '.join(map(str, allowed))}")
    return flags.astype(np.int64)


def stored_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, int]:
    """Where a bundle's bytes go: ``backbone`` and ``latents`` (the weights) and
    ``side`` (metadata, quantization parameters, models, a learned context, container headers).

    Each group is compressed on its own to estimate its share of the compressed
    bundle: a quantized bundle's coded stream, or a float bundle's tensors. The
    bundle's zstandard still finds a little in a coded stream (the latents' of 2 s
    of bikes at 0.05 bits a pixel: 14,492 bytes that it took to ~13,000, structure
    an entropy model with context would code), so the stream's own length
    overstated its share and left the side a negative remainder.
    """
    header, body = _split(decompress(data, limit=limits.payload_bytes))
    spans = [(k, v["data_offsets"]) for k, v in sorted(header.items()) if k != "__metadata__"]
    sizes = {}
    for group in GROUPS:
        if f"{group}.stream" in header:
            lo, hi = header[f"{group}.stream"]["data_offsets"]
            raw = body[lo:hi]
        else:
            raw = b"".join(body[lo:hi] for k, (lo, hi) in spans if group_of(k) == group)
        sizes[group] = min(len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)), len(raw)) if raw else 0
    sizes["side"] = len(data) - sum(sizes.values())
    return sizes


def _split(payload: bytes) -> tuple[dict, bytes]:
    """safetensors layout: u64 little-endian header size, then a JSON header (tensor
    offsets, and ``__metadata__`` mapping strings to strings), then the tensor bytes."""
    (size,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8:8 + size]), payload[8 + size:]


def _read_metadata(payload: bytes, name: str) -> dict:
    try:
        meta = json.loads(_split(payload)[0]["__metadata__"][METADATA_KEY])
    except (struct.error, ValueError, KeyError, TypeError, RecursionError):
        raise NeofieldError(f"{name} is not a neofield bundle (no neofield metadata)") from None
    if not isinstance(meta, dict):
        kind = {list: "a list", str: "text", type(None): "null", bool: "true/false"}.get(type(meta), "a number")
        raise NeofieldError(f"{name}: bundle metadata must be an object, not {kind}")
    return meta


def save(path: str | Path, field: NeoMLPField, meta: dict, force: bool = False,
         quantized: dict[str, QuantizedTensor] | None = None) -> int:
    """Write a bundle atomically; returns its size in bytes."""
    data = pack(field, meta, quantized)
    with atomic_output(Path(path), force=force) as tmp:
        tmp.write_bytes(data)
    return len(data)


def load(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Read a ``.nf`` file (an untrusted one: see :func:`unpack`)."""
    path = Path(path)
    if not path.exists():
        raise NeofieldError(f"{path} does not exist")
    if path.is_dir():
        raise NeofieldError(f"{path} is a directory, not a bundle")
    size = path.stat().st_size
    if size > limits.payload_bytes:  # zstd's overhead on incompressible bytes is tiny: this cannot fit the limit
        raise NeofieldError(f"{path} is {size:,} bytes, more than the {limits.payload_bytes:,} a bundle may take "
                            "(--allow-large raises the limit for a bundle you trust)")
    return unpack(path.read_bytes(), name=str(path), limits=limits)


def _short(exc: BaseException) -> str:
    """The gist of a library's error in one line: its first two lines (torch puts the detail on the second)."""
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()][:2]
    return " ".join(text)[:200] if text else type(exc).__name__
