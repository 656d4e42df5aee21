"""The ``.nf`` bundle: safetensors (weights + JSON metadata), compressed with zstandard.

This module is the on-disk format and nothing else; ``docs/format.md``
describes it for readers in other languages. Writing is deterministic, so a
bundle that is loaded and saved again is byte-for-byte the same file.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import zstandard

from . import __version__
from .errors import NeofieldError
from .fields.neomlp import NeoMLPConfig, NeoMLPField, Segmentation
from .files import atomic_output
from .quantize import QuantizedTensor, quantize

FORMAT_VERSION = 2  # v2 adds quantized tensors (weights_dtype "q8"); v1 bundles still load
ZSTD_LEVEL = 19
WEIGHT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
# uniform per-tensor quantization: uint8 symbols, plus [scale, offset] in float32 under NAME + QUANT_SUFFIX
QUANTIZED_DTYPES = {"q8": 8}
STORAGE_DTYPES = (*WEIGHT_DTYPES, *QUANTIZED_DTYPES)
QUANT_SUFFIX = ":quant"
METADATA_KEY = "neofield"


@dataclass
class Bundle:
    """A decoded bundle: the field, ready to evaluate, and its metadata."""

    field: NeoMLPField
    meta: dict
    quantized: dict[str, QuantizedTensor] | None = None  # the stored symbols, for a quantized bundle

    @property
    def kind(self) -> str:
        return self.meta["modality"]


def round_weights(field: NeoMLPField, dtype: str) -> dict[str, QuantizedTensor] | None:
    """Round the field's parameters to the bundle's storage precision, in place.

    Done right after fitting, so that what the encoder measures is exactly
    what any decoder of the file will compute. For a quantized dtype the
    symbols are returned: :func:`pack` stores exactly those.
    """
    if dtype in QUANTIZED_DTYPES:
        quantized = _quantize_state(field, QUANTIZED_DTYPES[dtype])
        _load_quantized(field, quantized)
        return quantized
    target = WEIGHT_DTYPES[dtype]
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(p.to(target).to(p.dtype))
    return None


def _quantize_state(field: NeoMLPField, bits: int) -> dict[str, QuantizedTensor]:
    return {name: quantize(t.detach().cpu().float().numpy(), bits) for name, t in field.state_dict().items()}


def _load_quantized(field: NeoMLPField, quantized: dict[str, QuantizedTensor]) -> None:
    field.load_state_dict({k: torch.from_numpy(q.dequantize()) for k, q in quantized.items()}, strict=True)


def pack(field: NeoMLPField, meta: dict, quantized: dict[str, QuantizedTensor] | None = None) -> bytes:
    """Serialise a field and its metadata to bundle bytes (a quantized bundle stores ``quantized``)."""
    meta = {**meta, "format_version": FORMAT_VERSION,
            "model": {"type": "neomlp", "config": field.config.to_dict(),
                      "segmentation": field.segmentation.to_dict()}}
    if meta["weights_dtype"] in QUANTIZED_DTYPES:
        if quantized is None:
            quantized = _quantize_state(field, QUANTIZED_DTYPES[meta["weights_dtype"]])
        tensors = {}
        for name, q in quantized.items():
            tensors[name] = torch.from_numpy(q.symbols.astype(np.uint8))
            tensors[name + QUANT_SUFFIX] = torch.tensor([float(q.scale), float(q.offset)], dtype=torch.float32)
    else:
        dtype = WEIGHT_DTYPES[meta["weights_dtype"]]
        tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in field.state_dict().items()}
    payload = safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=True).compress(payload)


def unpack(data: bytes, name: str = "bundle") -> Bundle:
    """Parse bundle bytes; every way they can be wrong is one clear error."""
    if not data:
        raise NeofieldError(f"{name} is empty")
    try:
        payload = zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError:
        raise NeofieldError(f"{name} is not a neofield bundle, or it is truncated or corrupted") from None
    meta = _read_metadata(payload, name)
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise NeofieldError(f"{name}: bundle metadata has no format version")
    if version > FORMAT_VERSION:
        raise NeofieldError(f"{name} is bundle format v{version}, newer than this neofield ({__version__}) "
                            f"reads (v{FORMAT_VERSION}); upgrade neofield")
    try:
        model = meta["model"]
        config = NeoMLPConfig.from_dict(model["config"])
        field = NeoMLPField(config, Segmentation(**model["segmentation"]))
        tensors = safetensors.torch.load(payload)
        quantized = None
        if meta.get("weights_dtype") in QUANTIZED_DTYPES:
            bits = QUANTIZED_DTYPES[meta["weights_dtype"]]
            quantized = {k: QuantizedTensor(v.numpy().astype(np.uint16), np.float32(tensors[k + QUANT_SUFFIX][0]),
                                            np.float32(tensors[k + QUANT_SUFFIX][1]), bits)
                         for k, v in tensors.items() if not k.endswith(QUANT_SUFFIX)}
            _load_quantized(field, quantized)
        else:
            field.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        raise NeofieldError(f"{name}: bundle is corrupted ({_short(exc)})") from None
    field.eval()
    return Bundle(field=field, meta=meta, quantized=quantized)


def _read_metadata(payload: bytes, name: str) -> dict:
    # safetensors layout: u64 little-endian header size, then a JSON header
    # whose "__metadata__" maps strings to strings.
    try:
        (size,) = struct.unpack("<Q", payload[:8])
        header = json.loads(payload[8:8 + size])
        return json.loads(header["__metadata__"][METADATA_KEY])
    except (struct.error, ValueError, KeyError, TypeError):
        raise NeofieldError(f"{name} is not a neofield bundle (no neofield metadata)") from None


def save(path: str | Path, field: NeoMLPField, meta: dict, force: bool = False,
         quantized: dict[str, QuantizedTensor] | None = None) -> int:
    """Write a bundle atomically; returns its size in bytes."""
    data = pack(field, meta, quantized)
    with atomic_output(Path(path), force=force) as tmp:
        tmp.write_bytes(data)
    return len(data)


def load(path: str | Path) -> Bundle:
    """Read a ``.nf`` file."""
    path = Path(path)
    if not path.exists():
        raise NeofieldError(f"{path} does not exist")
    if path.is_dir():
        raise NeofieldError(f"{path} is a directory, not a bundle")
    return unpack(path.read_bytes(), name=str(path))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else type(exc).__name__)
