"""Fuzz what neofield reads from untrusted hands: ``.nf`` bundles and decode options (issue 12, item 3).

    .venv/bin/python benchmarks/fuzz.py --cases 10000 --seed 0
    .venv/bin/python benchmarks/fuzz.py --only meta_config --case 7      # rerun one case

A handful of real bundles (video, sound, video with sound; quantized and
float16) are encoded once per session from tiny cuts of ``examples/``. Each
case takes one of them, applies one named kind of mutation (the compressed
file, the zstd frame, the safetensors payload, the JSON metadata, a
decompression bomb, or the decode options) and runs ``info``, ``decode`` and
``psnr`` in-process through typer's ``CliRunner``.

**Oracle.** A command fails when any of these holds:

* exit code other than 0, 1 or 2 (3 is ``internal error``), or an exception
  that escaped the command (``CliRunner`` would report it as exit 1);
* ``Traceback`` or ``internal error`` in its output;
* exit 1 whose standard error is not exactly one line starting ``error:``;
* it ran past the per-command limit (interrupted by ``SIGALRM``: ``hang``;
  finished late: ``slow``);
* exit non-zero and a file in the case's folder was created or changed (no
  half-written outputs), or any exit leaving a hidden temporary behind;
* exit 0 from ``decode`` with no output written;
* the process's peak RSS grew more than ``--rss-bound-mb`` (default 512 MiB;
  seeds and decodes here need a few MB) during the command, measured as
  ``VmHWM`` after resetting it through ``/proc/self/clear_refs`` (falls back
  to ``ru_maxrss``, which only sees new highs);
* its output mentions a failed allocation (``can't allocate memory``,
  ``MemoryError``, ...): the fuzzer caps its own address space with
  ``RLIMIT_AS`` (``--as-headroom-mb`` above the start, default 4 GiB) so that
  a bomb cannot take the machine down, and a command that was stopped only by
  that cap would have eaten the memory without it;
* raw control characters (ESC, other C0/C1 controls but tab and newline) in
  its output: text from a bundle reaching a terminal unescaped.

Usage errors (exit 2) are Typer's own multi-line panels and are not held to
the one-line rule. A command that is still stuck in C code well past its limit
(``SIGALRM`` cannot interrupt it) is reported and the process exits 4.

Everything is deterministic from ``--seed``: case ``N`` of kind ``K`` draws
from ``random.Random(f"{seed}/{K}/{N}")``, and every failure is printed on one
line with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "examples"
BIKES, BBB, BACH = EXAMPLES / "bikes_1s.mp4", EXAMPLES / "bbb_1s.mp4", EXAMPLES / "bach_2s.flac"

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_LIMIT = 10.0  # seconds per command
DEFAULT_RSS_BOUND_MB = 512
DEFAULT_AS_HEADROOM_MB = 4096
BOMB_BYTES = 68 * 16 * MiB  # 1.06 GiB of zeros: "a few KB inflating to more than 1 GB"

ALLOC_PATTERNS = ("can't allocate memory", "cannot allocate memory", "memoryerror", "out of memory",
                  "bad_alloc", "could not allocate", "failed to allocate")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


# ------------------------------------------------------------------ seeds ----
@dataclass
class Seed:
    """One real bundle the mutations start from."""

    name: str  # e.g. video-quantized
    modality: str  # video, audio, audiovisual
    dtype: str
    path: Path
    original: Path  # the media it was encoded from (for psnr)
    data: bytes = b""
    payload: bytes = b""
    meta: dict = field(default_factory=dict)

    def load(self) -> Seed:
        from neofield.bundle import decompress

        self.data = self.path.read_bytes()
        self.payload = decompress(self.data)
        _, metadata = parse_payload(self.payload)
        self.meta = json.loads(metadata["neofield"])
        return self


SEED_SPECS = [("video", "quantized"), ("video", "float16"), ("audio", "quantized"), ("audio", "float16"),
              ("audiovisual", "quantized"), ("audiovisual", "float16")]
# the quantized seeds are the default field (neogrid: pyramid layouts, its config), the float16 ones the
# paper's (time segments, RFF), so that every mutation meets both kinds of metadata and tensors
SEED_ARCH = {"quantized": "neogrid", "float16": "neomlp"}


def make_clips(folder: Path) -> dict[str, Path]:
    """Tiny real clips: 2 frames of bikes at 16x8, 0.05 s of Bach, 0.08 s of Big Buck Bunny at 16x8 with sound."""
    from neofield.media import Selection, read_media, write_video

    folder.mkdir(parents=True, exist_ok=True)
    clips = {"video": folder / "video.mp4", "audio": folder / "audio.wav", "audiovisual": folder / "av.mp4"}
    if not clips["video"].exists():
        m = read_media(BIKES, Selection(max_frames=2, resize=(16, 8)))
        write_video(clips["video"], iter(m.video), m.fps, lossless=True)
    if not clips["audio"].exists():
        import soundfile as sf

        m = read_media(BACH, Selection(duration=0.05))
        sf.write(clips["audio"], m.audio, m.sample_rate, subtype="FLOAT")
    if not clips["audiovisual"].exists():
        m = read_media(BBB, Selection(duration=0.08, resize=(16, 8)))
        write_video(clips["audiovisual"], iter(m.video), m.fps, m.audio, m.sample_rate, lossless=True)
    return clips


def make_seeds(folder: Path, steps: int = 4) -> list[Seed]:
    """Encode (or reuse, when ``folder`` already holds them) the seed bundles."""
    from neofield import codec

    folder = Path(folder)
    clips = make_clips(folder / "media")
    seeds = []
    for modality, dtype in SEED_SPECS:
        path = folder / f"{modality}-{dtype}-{SEED_ARCH[dtype]}.nf"
        if not path.exists():
            codec.encode(clips[modality], path, steps=steps, batch_size=256, device="cpu", compile_mode="off",
                         weights_dtype=dtype, seed=0, force=True, arch=SEED_ARCH[dtype])
        seeds.append(Seed(f"{modality}-{dtype}", modality, dtype, path, clips[modality]).load())
    return seeds


# -------------------------------------------------------- payload helpers ----
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
               "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
MAX_RELAYOUT = 64 * MiB  # a re-laid-out tensor is padded to its new size only up to this


@dataclass
class Entry:
    name: str
    dtype: object
    shape: object
    data: bytes


def split_payload(payload: bytes) -> tuple[bytes, bytes]:
    (n,) = struct.unpack("<Q", payload[:8])
    return payload[8:8 + n], payload[8 + n:]


def parse_payload(payload: bytes) -> tuple[list[Entry], dict | None]:
    header_bytes, body = split_payload(payload)
    header = json.loads(header_bytes)
    metadata = header.pop("__metadata__", None)
    entries = [Entry(k, v["dtype"], list(v["shape"]), body[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])]
    return entries, metadata


def build_payload(entries: list[Entry], metadata: dict | None, fix_sizes: bool = True) -> bytes:
    """A safetensors file from entries; with ``fix_sizes`` each tensor's bytes are cut or
    zero-padded to what its dtype and shape need, so that the container stays valid."""
    header, body = {}, bytearray()
    if metadata is not None:
        header["__metadata__"] = metadata
    for e in entries:
        data = e.data
        if fix_sizes and e.dtype in DTYPE_SIZES and isinstance(e.shape, list) \
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in e.shape):
            need = DTYPE_SIZES[e.dtype] * math.prod(e.shape)
            if need <= MAX_RELAYOUT:
                data = data[:need].ljust(need, b"\0")
        header[e.name] = {"dtype": e.dtype, "shape": e.shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    return join_payload(json.dumps(header, separators=(",", ":")).encode(), bytes(body))


def join_payload(header: bytes, body: bytes) -> bytes:
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + body


def compress(payload: bytes, content_size: bool = True, checksum: bool = True, level: int = 3) -> bytes:
    """A zstd frame of ``payload`` under the format's dictionary, as neofield writes one."""
    import zstandard

    from neofield.bundle import dictionary

    return zstandard.ZstdCompressor(level=level, dict_data=dictionary(), write_content_size=content_size,
                                    write_checksum=checksum).compress(payload)


def claim_content_size(payload: bytes, claim: int, checksum: bool = True) -> bytes:
    """A valid zstd frame of ``payload`` whose header states ``claim`` as its content size."""
    import zstandard

    raw = compress(payload, content_size=False, checksum=checksum)
    fhd = raw[4]
    if fhd & 0xE3:  # content size, single segment or dictionary already present: not the layout expected
        raise RuntimeError(f"unexpected zstd frame header descriptor {fhd:#x}")
    framed = raw[:4] + bytes([fhd | 0xC0]) + raw[5:6] + struct.pack("<Q", claim) + raw[6:]
    stated = zstandard.get_frame_parameters(framed).content_size
    if stated != claim:
        raise RuntimeError(f"crafted frame states {stated}, not {claim}")
    return framed


def with_meta(seed: Seed, meta) -> bytes:
    """The seed's payload with its ``neofield`` metadata replaced (NaN/Infinity as Python's json writes them)."""
    entries, metadata = parse_payload(seed.payload)
    metadata = dict(metadata or {})
    metadata["neofield"] = json.dumps(meta, sort_keys=True)
    return build_payload(entries, metadata)


def short(value, width: int = 48) -> str:
    r = repr(value)
    return r if len(r) <= width else f"{r[:width - 20]}...<{len(r)} chars>"


def paths(obj, prefix=()):
    """Every path into a JSON tree (dict keys and list indices), containers included."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from paths(v, prefix + (i,))


def get_path(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def has_path(obj, path) -> bool:
    try:
        get_path(obj, path)
        return True
    except (KeyError, IndexError, TypeError):
        return False


def set_path(obj, path, value) -> None:
    parent = obj
    for p in path[:-1]:
        if isinstance(parent, dict) and p not in parent:
            parent[p] = {}
        parent = parent[p]
    parent[path[-1]] = value


def del_path(obj, path) -> None:
    parent = get_path(obj, path[:-1])
    del parent[path[-1]]


def dotted(path) -> str:
    return ".".join(str(p) for p in path)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------- mutations ----
# A bundle mutation returns (bytes of the .nf file, description); an option
# mutation returns an OptionCase. Every random choice comes from ``rng``.

def mut_truncate(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    import zstandard

    n, hdr = len(s.data), zstandard.frame_header_size(s.data)
    where = rng.choice(["empty", "magic", "frame header", "first block", "middle", "checksum", "last byte",
                        "random"])
    cut = {"empty": 0, "magic": rng.randrange(1, 4), "frame header": rng.randrange(4, hdr + 1),
           "first block": rng.randrange(hdr, min(n, hdr + 8)), "middle": n // 2,
           "checksum": rng.randrange(n - 4, n), "last byte": n - 1, "random": rng.randrange(0, n)}[where]
    return s.data[:cut], f"cut to {cut} of {n} bytes ({where})"


def mut_append(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    what = rng.choice(["garbage", "zeros", "second frame", "skippable frame after", "skippable frame before",
                       "itself again", "one byte"])
    if what == "garbage":
        k = rng.randrange(1, 200)
        return s.data + rng.randbytes(k), f"{k} random bytes after the frame"
    if what == "zeros":
        k = rng.choice([1, 3, 4, 1000])
        return s.data + bytes(k), f"{k} zero bytes after the frame"
    if what == "second frame":
        return s.data + compress(b"not a neofield payload"), "a second zstd frame after the first"
    skippable = struct.pack("<II", 0x184D2A50 + rng.randrange(16), 8) + rng.randbytes(8)
    if what == "skippable frame after":
        return s.data + skippable, "a skippable frame after the frame"
    if what == "skippable frame before":
        return skippable + s.data, "a skippable frame before the frame"
    if what == "itself again":
        return s.data + s.data, "the whole file twice"
    return s.data + b"\n", "a newline after the frame"


def mut_bitflip(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    data = bytearray(s.data)
    k = rng.choice([1, 1, 2, 4, 8, 32])
    region = rng.choice(["anywhere", "anywhere", "frame header", "checksum", "payload start"])
    lo, hi = {"anywhere": (0, len(data)), "frame header": (0, min(len(data), 18)),
              "checksum": (len(data) - 4, len(data)), "payload start": (6, min(len(data), 200))}[region]
    bits = sorted(rng.randrange(lo * 8, hi * 8) for _ in range(k))
    for b in bits:
        data[b // 8] ^= 1 << (b % 8)
    shown = ",".join(str(b) for b in bits[:6]) + ("..." if k > 6 else "")
    return bytes(data), f"{k} bit(s) flipped ({region}) at bits {shown}"


def mut_overwrite(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    data = bytearray(s.data)
    length = rng.choice([1, 2, 4, 16, 64, 256])
    at = rng.randrange(0, max(1, len(data) - 1))
    fill = rng.choice(["0x00", "0xff", "random", "copied"])
    n = min(length, len(data) - at)
    if fill == "0x00":
        chunk = bytes(n)
    elif fill == "0xff":
        chunk = b"\xff" * n
    elif fill == "random":
        chunk = rng.randbytes(n)
    else:
        src = rng.randrange(0, len(data) - n + 1)
        chunk = bytes(data[src:src + n])
    data[at:at + n] = chunk
    return bytes(data), f"{n} bytes at {at} overwritten ({fill})"


def mut_frame(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    p = s.payload
    what = rng.choice(["no content size", "no checksum", "level 1", "claims 2**40", "claims 2**62",
                       "claims 2**64-2", "claims size+1", "claims size-1", "claims 3 GiB", "claims 0",
                       "split in two frames", "dictionary id"])
    if what == "no content size":
        return compress(p, content_size=False), "payload recompressed without a content size"
    if what == "no checksum":
        return compress(p, checksum=False), "payload recompressed without a checksum"
    if what == "level 1":
        return compress(p, level=1), "payload recompressed at level 1"
    if what.startswith("claims"):
        claim = {"claims 2**40": 1 << 40, "claims 2**62": 1 << 62, "claims 2**64-2": (1 << 64) - 2,
                 "claims size+1": len(p) + 1, "claims size-1": len(p) - 1, "claims 3 GiB": 3 * GiB,
                 "claims 0": 0}[what]
        checksum = rng.random() < 0.5
        return claim_content_size(p, claim, checksum), \
            f"frame header states content size {claim} (real {len(p)}){'' if checksum else ', no checksum'}"
    if what == "split in two frames":
        cut = rng.randrange(1, len(p))
        return compress(p[:cut]) + compress(p[cut:]), f"payload split at {cut} into two frames"
    raw = bytearray(compress(p, content_size=False))
    raw[4] |= 0x01  # a one-byte dictionary id follows the window descriptor
    raw[6:6] = bytes([rng.randrange(1, 256)])
    return bytes(raw), "frame header asks for a dictionary"


def mut_header_len(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    n, total = len(split_payload(s.payload)[0]), len(s.payload)
    value = rng.choice([0, 1, 7, n - 1, n + 1, n + 8, total - 8, total, total + 1, 100_000_001, 1 << 31,
                        (1 << 32) + n, 1 << 63, (1 << 64) - 1, "short payload"])
    if value == "short payload":
        k = rng.randrange(0, 8)
        return compress(s.payload[:k]), f"payload cut to {k} bytes (no whole header length)"
    return compress(struct.pack("<Q", value) + s.payload[8:]), f"header length {value} (real {n})"


def mut_header_json(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    header, body = split_payload(s.payload)
    hdr = json.loads(header)
    what = rng.choice(["flip a byte", "flip a byte", "replace", "no __metadata__", "metadata not strings",
                       "neofield not JSON", "neofield not an object", "deep nesting", "padding", "duplicate key",
                       "invalid utf-8"])
    if what == "flip a byte":
        b = bytearray(header)
        at = rng.randrange(len(b))
        b[at] = rng.choice([ord('"'), ord("{"), ord("}"), ord(","), ord(":"), ord("\\"), 0, 0xff, rng.randrange(256)])
        return compress(struct.pack("<Q", len(b)) + bytes(b) + body), f"header byte {at} set to {b[at]:#04x}"
    if what == "replace":
        text = rng.choice([b"{}", b"[]", b"null", b"{", b"\"x\"", b"123", b"{\"__metadata__\": null}",
                           b"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}"])
        return compress(join_payload(text, body)), f"header replaced by {text!r}"
    if what == "no __metadata__":
        hdr.pop("__metadata__")
        return compress(join_payload(json.dumps(hdr).encode(), body)), "header without __metadata__"
    if what == "metadata not strings":
        hdr["__metadata__"] = rng.choice([{"neofield": {"format_version": 3}}, {"neofield": 3}, [], "x"])
        return compress(join_payload(json.dumps(hdr).encode(), body)), \
            f"__metadata__ set to {short(hdr['__metadata__'])}"
    if what == "neofield not JSON":
        hdr["__metadata__"]["neofield"] = rng.choice(["", "{", "not json", "{'a': 1}", "NaN"])
        return compress(join_payload(json.dumps(hdr).encode(), body)), \
            f"neofield metadata is {short(hdr['__metadata__']['neofield'])}"
    if what == "neofield not an object":
        value = rng.choice(["[]", "null", "123", "\"string\"", "true", "[{\"format_version\": 3}]"])
        hdr["__metadata__"]["neofield"] = value
        return compress(join_payload(json.dumps(hdr).encode(), body)), f"neofield metadata is the JSON {value}"
    if what == "deep nesting":
        depth = rng.choice([1000, 100_000])
        hdr["__metadata__"]["neofield"] = "[" * depth + "]" * depth
        return compress(join_payload(json.dumps(hdr).encode(), body)), f"neofield metadata nested {depth} deep"
    if what == "padding":
        pad = rng.choice([1 * MiB, 20 * MiB])
        text = json.dumps(hdr).encode() + b" " * pad
        return compress(join_payload(text, body)), f"header padded with {pad} spaces"
    if what == "duplicate key":
        name = rng.choice([k for k in hdr if k != "__metadata__"])
        entry = json.dumps(hdr[name])
        text = json.dumps(hdr)[:-1] + f", {json.dumps(name)}: {entry}, \"__metadata__\": {{}}}}"
        return compress(join_payload(text.encode(), body)), f"{name} and __metadata__ given twice"
    b = bytearray(header)
    at = header.index(b"neofield")
    b[at:at + 1] = b"\xff"
    return compress(struct.pack("<Q", len(b)) + bytes(b) + body), "invalid UTF-8 in the header"


def _pick_entry(rng, entries):
    i = rng.randrange(len(entries))
    return i, entries[i]


def mut_offsets(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    header, body = split_payload(s.payload)
    hdr = json.loads(header)
    names = sorted(k for k in hdr if k != "__metadata__")
    name = rng.choice(names)
    a, b = hdr[name]["data_offsets"]
    n = len(body)
    value = rng.choice([[b, a], [0, n + 1], [a, a], [a + 1, b + 1], [a - 1, b - 1], [0, n], [a, 1 << 62],
                        [-1, b], [a], [], [a, b, b], "x", [str(a), b], [float(a), float(b)], None,
                        [(1 << 64) - 8, (1 << 64) - 4], [n, n]])
    hdr[name]["data_offsets"] = value
    return compress(join_payload(json.dumps(hdr).encode(), body)), f"{name} data_offsets {short(value)} (was [{a}, {b}])"


def mut_dtype(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    entries, metadata = parse_payload(s.payload)
    _, e = _pick_entry(rng, entries)
    old = e.dtype
    same = [d for d, k in DTYPE_SIZES.items() if k == DTYPE_SIZES.get(old) and d != old]
    choice = rng.random()
    if choice < 0.4 and same:
        e.dtype = rng.choice(same)
        fix, how = False, "same item size"
    elif choice < 0.8:
        e.dtype = rng.choice(sorted(DTYPE_SIZES))
        fix, how = True, "re-laid out"
    else:
        e.dtype = rng.choice(["XYZ", "", "f32", "F32 ", "C64", "F4", 5, None, ["F32"]])
        fix, how = False, "unknown"
    return compress(build_payload(entries, metadata, fix)), f"{e.name} dtype {short(e.dtype)} (was {old}; {how})"


def mut_shape(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    entries, metadata = parse_payload(s.payload)
    _, e = _pick_entry(rng, entries)
    old = list(e.shape)
    n = math.prod(old) if old else 1
    options = [([], True), ([0], True), ([n + 1], True), ([max(n - 1, 0)], True), (old[::-1], True),
               ([1, *old], True), ([*old, 1], True), ([n * 2], True), ([1 << 31], False), ([1 << 40, 1 << 40], False),
               ([-1], False), (["3"], False), ([1.5], False), (None, False), ("x", False), ([0, 1 << 62], True),
               ([1 << 20, 1 << 20, 1 << 20], False)]
    if old:
        options.append(([*old[:-1], old[-1] + 1], True))
    shape, fix = rng.choice(options)
    e.shape = shape
    return compress(build_payload(entries, metadata, fix)), \
        f"{e.name} shape {short(shape)} (was {old}{'; re-laid out' if fix else ''})"


def mut_tensors(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    """Valid containers whose tensors say odd things: quantization parameters, levels, streams, weights."""
    import numpy as np

    entries, metadata = parse_payload(s.payload)
    by = {e.name: e for e in entries}
    generic = rng.random() < 0.3
    if generic:
        what = rng.choice(["drop", "rename", "extra", "duplicate data", "empty"])
        i, e = _pick_entry(rng, entries)
        if what == "drop":
            entries.pop(i)
            desc = f"tensor {e.name} removed"
        elif what == "rename":
            old, e.name = e.name, e.name + rng.choice(["_", ".x", ":quant"])
            desc = f"tensor {old} renamed {e.name}"
        elif what == "extra":
            entries.append(Entry(rng.choice(["extra", "latents.extra", "backbone.zzz", "backbone.stream.2"]),
                                 "F32", [4], bytes(16)))
            desc = f"extra tensor {entries[-1].name}"
        elif what == "duplicate data":
            _, other = _pick_entry(rng, entries)
            e.data = other.data
            desc = f"{e.name} holds {other.name}'s bytes"
        else:
            entries = []
            desc = "no tensors at all"
        return compress(build_payload(entries, metadata)), desc
    if s.dtype == "quantized":
        group = rng.choice(["backbone", "latents"])
        target = rng.choice(["levels", "params", "stream", "models", "contexts", "context"])
        if f"{group}.{target}" not in by:  # a field without pyramids codes no blocks, a small one learns no context
            target = "stream"
        e = by[f"{group}.{target}"]
        if target == "context":  # the learned context's int16 weights
            a = np.frombuffer(e.data, "<i2").copy()
            k = rng.randrange(len(a))
            a[k] = v = rng.choice([0, 1, -1, 255, 32767, -32768])
            e.data = a.tobytes()
            desc = f"{e.name}[{k}] = {v}"
        elif target in ("models", "contexts"):  # a block's Laplace (centre, decay), or how it is coded (0 .. 3)
            a = np.frombuffer(e.data, "<i4").copy()
            k = rng.randrange(len(a)) if len(a) else 0
            v = rng.choice([0, 1, 2, 3, 4, -1, 65535, 65536, 2**31 - 1, -2**31])
            if len(a):
                a[k] = v
            e.data = a.tobytes()
            desc = f"{e.name}[{k // (2 if target == 'models' else 1)}] = {v}"
        elif target == "levels":
            a = np.frombuffer(e.data, "<i4").copy()
            k = rng.randrange(len(a))
            v = rng.choice([0, 1, -5, 2, 3, 65536, 65537, 2**31 - 1, -2**31])
            a[k] = v
            e.data = a.tobytes()
            desc = f"{e.name}[{k}] = {v}"
        elif target == "params":
            a = np.frombuffer(e.data, "<f4").reshape(-1, 4).copy()
            k, col = rng.randrange(len(a)), rng.randrange(4)
            v = rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e-30, 1e30, 3e38, -3e38, 1e-45,
                            1e7])
            a[k, col] = v
            e.data = a.tobytes()
            desc = f"{e.name}[{k}, {['scale', 'offset', 'mean', 'std'][col]}] = {v}"
        else:
            how = rng.choice(["empty", "4 bytes", "random", "0xff", "doubled", "odd length", "halved", "zeros"])
            d = e.data
            e.data = {"empty": b"", "4 bytes": d[:4], "random": rng.randbytes(len(d)), "0xff": b"\xff" * len(d),
                      "doubled": d + d, "odd length": d + b"\0", "halved": d[:len(d) // 2 // 4 * 4],
                      "zeros": bytes(len(d))}[how]
            e.shape = [len(e.data)]
            desc = f"{e.name} {how} ({len(e.data)} bytes, was {len(d)})"
        return compress(build_payload(entries, metadata)), desc
    e = rng.choice([e for e in entries])
    dt = {"F16": "<f2", "BF16": None, "F32": "<f4"}.get(e.dtype)
    if dt is None:
        return compress(build_payload(entries, metadata)), "unchanged (no float tensor)"
    a = np.frombuffer(e.data, dt).copy()
    v = rng.choice([float("nan"), float("inf"), -float("inf"), 65504.0, 6e-8, 0.0])
    how = rng.choice(["one", "all"])
    if how == "one":
        a[rng.randrange(len(a))] = v
    else:
        a[:] = v
    e.data = a.tobytes()
    return compress(build_payload(entries, metadata)), f"{e.name}: {how} value(s) = {v}"


# -------------------------------------------------------- metadata kinds ----
META_KEYS = [("geometry",), ("geometry", "duration"), ("geometry", "video"), ("geometry", "video", "width"),
             ("geometry", "video", "height"), ("geometry", "video", "frames"), ("geometry", "video", "fps"),
             ("geometry", "video", "still"), ("geometry", "audio"), ("geometry", "audio", "sample_rate"),
             ("geometry", "audio", "samples"), ("geometry", "audio", "channels"), ("modality",), ("model",),
             ("model", "type"), ("model", "config"), ("model", "segmentation"), ("source",), ("source", "name"),
             ("source", "selection"), ("source", "sha256"), ("quantization",), ("quantization", "bits"),
             ("coordinates",), ("coordinates", "t"), ("coordinates", "x"), ("values",), ("values", "video"),
             ("values", "audio"), ("outputs",), ("outputs", "video"), ("outputs", "audio"), ("weights_dtype",),
             ("format_version",), ("fit",), ("quality",), ("preset",), ("neofield_version",)]
CONFIG_KEYS = ["dim", "ffn_dim", "heads", "layers", "rff_dim", "rff_sigma", "hidden_tokens", "attention",
               "in_features", "out_features", "seed"]
SEGMENTATION_KEYS = ["segments", "t_start", "t_end", "time_index", "interpolation"]
META_KEYS += [("model", "config", k) for k in CONFIG_KEYS] + [("model", "segmentation", k) for k in SEGMENTATION_KEYS]


def _meta_bundle(s: Seed, meta) -> bytes:
    return compress(with_meta(s, meta))


def mut_meta_delete(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    gone = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if rng.random() < 0.7:
            candidates = [p for p in META_KEYS if has_path(meta, p)]
        else:
            candidates = [p for p in paths(meta) if isinstance(p[-1], str)]
        if not candidates:
            break
        p = rng.choice(candidates)
        del_path(meta, p)
        gone.append(dotted(p))
    return _meta_bundle(s, meta), "deleted " + ", ".join(gone)


SWAPS = [None, "", "3", "[bold]x", [], [1, 2], {}, {"a": 1}, True, False, 0, 1.5, -1, [[]], {"video": None}]


def mut_meta_type(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    if rng.random() < 0.5:
        candidates = [p for p in META_KEYS if has_path(meta, p)]
    else:
        candidates = list(paths(meta))
    p = rng.choice(candidates)
    old = get_path(meta, p)
    value = rng.choice([v for v in SWAPS if type(v) is not type(old)])
    set_path(meta, p, value)
    return _meta_bundle(s, meta), f"{dotted(p)} = {short(value)} (was {short(old, 24)})"


HUGE = [1e12, 2**63, 2**64, -1, 0, -0.0, float("nan"), float("inf"), -float("inf"), 1e308, 1e-308, 0.5, -2**63,
        10**30, 2**31, 2**53 + 1]


def mut_meta_number(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    p = rng.choice([p for p in paths(meta) if is_number(get_path(meta, p))])
    old = get_path(meta, p)
    value = rng.choice(HUGE)
    set_path(meta, p, value)
    return _meta_bundle(s, meta), f"{dotted(p)} = {short(value)} (was {short(old, 24)})"


CONFIG_BOMBS = [2**20, 10**6, 10**9, 2**31, 2**63, 2**64, -1, 0, 1e12, 3, 7, 4097]


def mut_meta_config(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    keys = [("config", k) for k in ("dim", "ffn_dim", "layers", "rff_dim", "heads", "hidden_tokens", "in_features",
                                    "out_features", "seed")] + [("segmentation", "segments"),
                                                                ("segmentation", "time_index")]
    changes = []
    for _ in range(rng.choice([1, 1, 2])):
        where, key = rng.choice(keys)
        value = rng.choice(CONFIG_BOMBS)
        meta["model"][where][key] = value
        changes.append(f"model.{where}.{key} = {value}")
    if rng.random() < 0.15:
        value = rng.choice([1e30, float("nan"), -1.0, 0.0, [1.0] * 7, [], "x"])
        meta["model"]["config"]["rff_sigma"] = value
        changes.append(f"model.config.rff_sigma = {short(value)}")
    if rng.random() < 0.1:
        value = rng.choice(["softmax", "xyz", ""])
        meta["model"]["config"]["attention"] = value
        changes.append(f"model.config.attention = {value!r}")
    pyramids = meta["model"].get("segmentation", {}).get("pyramids")
    if isinstance(pyramids, list) and pyramids and rng.random() < 0.3:  # a pyramid's taps (format v8)
        k = rng.randrange(len(pyramids))
        value = rng.choice([-1, 1, 2, 6, 7, 32, 2**31, True, 1.5, "1", None])
        pyramids[k]["taps"] = value
        if rng.random() < 0.5:  # the tokens to match, so that only the layout's own check can refuse it
            meta["model"]["config"]["tokens"] = rng.choice([10, 14, 30, 2**31])
        changes.append(f"model.segmentation.pyramids[{k}].taps = {value!r}")
    return _meta_bundle(s, meta), "; ".join(changes)


GEOMETRY_BOMBS = [10**9, 1e9, 2**31, 16384, 100_000, 1e-9, 0, -1, 0.5]


def mut_meta_geometry(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    geo = meta["geometry"]
    what = rng.choice(["one value", "one value", "long clip", "big frame", "selection", "maps", "outputs"])
    if what == "one value":
        candidates = [("geometry", "duration")] + [("geometry", m, k) for m in ("video", "audio") if m in geo
                                                   for k in geo[m] if is_number(geo[m][k])]
        p = rng.choice(candidates)
        value = rng.choice(GEOMETRY_BOMBS)
        set_path(meta, p, value)
        desc = f"{dotted(p)} = {value}"
    elif what == "long clip":
        seconds = rng.choice([3600.0, 86400.0, 1e9])
        geo["duration"] = seconds
        if "video" in geo:
            geo["video"]["frames"] = int(seconds * geo["video"]["fps"])
        if "audio" in geo:
            geo["audio"]["samples"] = int(seconds * geo["audio"]["sample_rate"])
        desc = f"a {seconds:g} s clip (frames and samples to match)"
    elif what == "big frame":
        side = rng.choice([4096, 16384, 100_000, 10**9])
        if "video" in geo:
            geo["video"]["width"] = geo["video"]["height"] = side
        else:
            geo["audio"]["sample_rate"] = side * 100
        desc = f"frames {side}x{side}" if "video" in geo else f"sample rate {side * 100}"
    elif what == "selection":
        sel = meta["source"]["selection"]
        key, value = rng.choice([("resize", [16384, 16384]), ("resize", [10**9, 10**9]), ("resize", [0, 0]),
                                 ("resize", [16384, 1]), ("max_frames", 10**12), ("max_frames", 0),
                                 ("duration", 1e9), ("duration", 0), ("start", 1e9), ("start", -1),
                                 ("start", float("nan")), ("resize", "16x8"), ("resize", [1])])
        sel[key] = value
        desc = f"source.selection.{key} = {short(value)}"
    elif what == "maps":
        p = rng.choice([p for p in paths(meta) if p[0] in ("coordinates", "values") and is_number(get_path(meta, p))])
        value = rng.choice([0.0, 1e30, -1e30, float("nan"), float("inf"), 1e-30])
        set_path(meta, p, value)
        desc = f"{dotted(p)} = {value}"
    else:
        m = rng.choice(list(meta["outputs"]))
        value = rng.choice([[0, 1000], [5, 2], [0], [], "x", [-3, None], [0, 2**63]])
        meta["outputs"][m] = value
        desc = f"outputs.{m} = {short(value)}"
    return _meta_bundle(s, meta), desc


EVIL_STRINGS = ["[/]", "[bold]", "[bold red]x[/bold red]", "[link=file:///etc/passwd]x[/link]",
                "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "\x1b[2J", "line1\nline2", "cr\rx", "nul\x00x",
                "\u202eevil.mp4", "\ud800", "x" * 100_000, "%s%n%x", "{0}{1}", "", " ", "../../etc/passwd",
                "\u540d\u524d.mp4", "tab\tx", "\x9b31m"]
STRING_PATHS = [("source", "name"), ("source", "sha256"), ("preset",), ("neofield_version",), ("modality",),
                ("weights_dtype",), ("model", "config", "attention"), ("model", "segmentation", "interpolation"),
                ("model", "type"), ("fit", "config", "device"), ("zzz",)]


def mut_meta_strings(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    p = rng.choice([p for p in STRING_PATHS if p == ("zzz",) or has_path(meta, p)])
    value = rng.choice(EVIL_STRINGS)
    set_path(meta, p, value)
    if rng.random() < 0.2:  # the same string as a key
        meta["geometry"][value] = 1
    return _meta_bundle(s, meta), f"{dotted(p)} = {short(value)}"


def mut_meta_version(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    meta = json.loads(json.dumps(s.meta))
    key, value = rng.choice([("format_version", v) for v in (4, 99, 2**63, 2**64, -1, 0, 1, 2, "3", 3.0, 3.5,
                                                              True, False, None, [3], {"v": 3}, float("nan"))]
                            + [("weights_dtype", v) for v in ("q8", "float64", "", "QUANTIZED", "int8")]
                            + [("neofield_version", v) for v in (None, 3, "99.0", [])])
    meta[key] = value
    return _meta_bundle(s, meta), f"{key} = {short(value)}"


def _bomb_frame(size: int, stated: bool, prefix: bytes = b"") -> bytes:
    """A zstd frame of ``prefix`` then zeros, ``size`` bytes in all, built in 16 MiB chunks."""
    import zstandard

    out = io.BytesIO()
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=stated, write_checksum=True)
    chunk = bytes(16 * MiB)
    with cctx.stream_writer(out, size=size if stated else -1, closefd=False) as w:
        w.write(prefix)
        left = size - len(prefix)
        while left > 0:
            w.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
    return out.getvalue()


def mut_bomb(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    what = rng.choice(["zeros, size stated", "zeros, size not stated", "valid bundle + 1 GiB tensor",
                       "valid header, 1 GiB of JSON padding"])
    key = (what, s.name if what.startswith("valid") else "")
    if key not in ctx.bombs:
        if what == "zeros, size stated":
            data = _bomb_frame(BOMB_BYTES, True)
        elif what == "zeros, size not stated":
            data = _bomb_frame(BOMB_BYTES, False)
        elif what == "valid bundle + 1 GiB tensor":
            entries, metadata = parse_payload(s.payload)
            entries.append(Entry("zzz.padding", "U8", [BOMB_BYTES], b""))
            header, body = split_payload(build_payload(entries, metadata, fix_sizes=False))
            # the padding tensor's offsets were written as [len(body), len(body)]: make them cover the zeros
            hdr = json.loads(header)
            lo = hdr["zzz.padding"]["data_offsets"][0]
            hdr["zzz.padding"]["data_offsets"] = [lo, lo + BOMB_BYTES]
            prefix = join_payload(json.dumps(hdr, separators=(",", ":")).encode(), body)
            data = _bomb_frame(len(prefix) + BOMB_BYTES, True, prefix)
        else:
            header, body = split_payload(s.payload)
            size = BOMB_BYTES
            prefix = struct.pack("<Q", len(header) + size) + header
            # spaces after the JSON header, then the tensors: one valid safetensors file, 1 GiB bigger
            import zstandard

            out = io.BytesIO()
            cctx = zstandard.ZstdCompressor(level=1, write_content_size=True, write_checksum=True)
            with cctx.stream_writer(out, size=len(prefix) + size + len(body), closefd=False) as w:
                w.write(prefix)
                chunk = b" " * (16 * MiB)
                left = size
                while left > 0:
                    w.write(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
                w.write(body)
            data = out.getvalue()
        ctx.bombs[key] = data
    data = ctx.bombs[key]
    return data, f"{what} ({BOMB_BYTES / GiB:.2f} GiB from {len(data):,} bytes)"


def mut_clean(rng: random.Random, s: Seed, ctx) -> tuple[bytes, str]:
    """Controls: the seed as written, and re-packed by this fuzzer's own helpers (must all decode)."""
    what = rng.choice(["as written", "payload rebuilt", "recompressed without checksum"])
    if what == "as written":
        return s.data, "the seed bundle, unchanged"
    if what == "payload rebuilt":
        entries, metadata = parse_payload(s.payload)
        return compress(build_payload(entries, metadata)), "payload rebuilt by the fuzzer, same content"
    return compress(s.payload, checksum=False), "recompressed without a checksum"


# ---------------------------------------------------------- option kinds ----
@dataclass
class OptionCase:
    args: list[str]  # after "decode BUNDLE"; "{d}" is the case folder
    description: str
    setup: list[tuple[str, str]] = field(default_factory=list)  # ("dir"|"file", relative path)
    output: str | None = None  # relative output path expected on success


def _out_for(s: Seed, rng) -> tuple[str, list[str]]:
    if s.modality == "audio":
        return rng.choice([("out.wav", []), ("out.flac", [])])
    return rng.choice([("out.mp4", []), ("still.png", ["--frame", "0"])] if s.modality == "video"
                      else [("out.mp4", []), ("out.wav", [])])


def opt_scale(rng, s, ctx) -> OptionCase:
    flag = rng.choice(["--scale", "--scale", "--scale-time", "--scale-rate"])
    value = rng.choice(["0", "-1", "1000", "inf", "-inf", "nan", "1e-9", "1e308", "64", "0.001", "abc", "1e-320",
                        "0.5", "2"])
    out, extra = _out_for(s, rng)
    return OptionCase(["-o", f"{{d}}/{out}", flag, value, *extra], f"{flag} {value} -> {out}", output=out)


def opt_size(rng, s, ctx) -> OptionCase:
    value = rng.choice(["0x0", "20000x20000", "16384x16384", "garbage", "1x1", "-1x5", "16x", "x",
                        "99999999999999999999x1", "1e3x1", "2x2", "15x7", "16385x1", "16384x1", "1x16384", "８x８"])
    out, extra = _out_for(s, rng)
    return OptionCase(["-o", f"{{d}}/{out}", "--size", value, *extra], f"--size {value} -> {out}", output=out)


def opt_rate(rng, s, ctx) -> OptionCase:
    if s.modality != "audio" and (s.modality == "video" or rng.random() < 0.5):
        flag = "--fps"
        value = rng.choice(["1e12", "1001", "1000", "nan", "inf", "-1", "0", "1e-9", "0.5", "23.976", "1e-300"])
    else:
        flag = "--sample-rate"
        value = rng.choice(["0", "-1", "768000", "768001", "99999999999999999999", "nan", "inf", "1", "8000",
                            "44100.5"])
    out, extra = _out_for(s, rng)
    return OptionCase(["-o", f"{{d}}/{out}", flag, value, *extra], f"{flag} {value} -> {out}", output=out)


def opt_time(rng, s, ctx) -> OptionCase:
    values = ["nan", "-1", "inf", "1e9", "0", "0.04", "0.999", "-0", "1e-12", "0.0799"]
    flags = rng.choice([["--start"], ["--end"], ["--start", "--end"], ["--frame"], ["--duration"]])
    args, desc = [], []
    for f in flags:
        v = rng.choice(values)
        args += [f, v]
        desc.append(f"{f} {v}")
    if "--frame" in flags:
        out = "still.png"
    else:
        out = {"video": "out.mp4", "audio": "out.wav"}.get(s.modality) or rng.choice(["out.mp4", "out.wav"])
    return OptionCase(["-o", f"{{d}}/{out}", *args], " ".join(desc) + f" -> {out}", output=out)


def opt_output(rng, s, ctx) -> OptionCase:
    video = s.modality != "audio"
    ext = ".mp4" if video else ".wav"
    what = rng.choice(["the folder itself", "a folder named like the output", "existing file", "existing + force",
                       "missing folder", "unknown extension", "no extension", "upper-case extension",
                       "picture without --frame", "stdout", "stdout bad format", "format without stdout",
                       "frames pattern, missing folder", "frames pattern", "bad pattern", "default output exists",
                       "default output", "bad codec", "bad crf", "lossless to audio", "long name",
                       "newline in name"])
    if what == "the folder itself":
        return OptionCase(["-o", "{d}"], what)
    if what == "a folder named like the output":
        return OptionCase(["-o", f"{{d}}/out{ext}"], what, [("dir", f"out{ext}")])
    if what == "existing file":
        return OptionCase(["-o", f"{{d}}/out{ext}"], what, [("file", f"out{ext}")])
    if what == "existing + force":
        return OptionCase(["-o", f"{{d}}/out{ext}", "--force"], what, [("file", f"out{ext}")], output=f"out{ext}")
    if what == "missing folder":
        return OptionCase(["-o", f"{{d}}/missing/out{ext}"], what)
    if what == "unknown extension":
        e = rng.choice([".xyz", ".nf", ".txt", ".mp4.", ".avi"])
        return OptionCase(["-o", f"{{d}}/out{e}"], f"{what} {e}")
    if what == "no extension":
        return OptionCase(["-o", "{d}/out"], what)
    if what == "upper-case extension":
        return OptionCase(["-o", f"{{d}}/out{ext.upper()}"], what, output=f"out{ext.upper()}")
    if what == "picture without --frame":
        return OptionCase(["-o", "{d}/still.png"], what)
    if what == "stdout":
        return OptionCase(["-o", "-"], what, output="-")
    if what == "stdout bad format":
        f = rng.choice(["xyz", "", "png", "nf", "%05d.png"])
        return OptionCase(["-o", "-", "--format", f], f"{what} {f!r}")
    if what == "format without stdout":
        return OptionCase(["-o", f"{{d}}/out{ext}", "--format", "mkv"], what)
    if what == "frames pattern, missing folder":
        return OptionCase(["-o", "{d}/frames/%05d.png"], what)
    if what == "frames pattern":
        return OptionCase(["-o", "{d}/frames/%05d.png"], what, [("dir", "frames")], output="frames")
    if what == "bad pattern":
        p = rng.choice(["%d%d.png", "%s.png", "%.png", "%5.2f.png", "%0999999d.png", "%x.png"])
        return OptionCase(["-o", f"{{d}}/{p}"], f"{what} {p}")
    if what == "default output exists":
        name = f"in.decoded{ext}"
        return OptionCase([], what, [("file", name)])
    if what == "default output":
        return OptionCase([], what, output=f"in.decoded{ext}")
    if what == "bad codec":
        c = rng.choice(["xyz", "", "h264; rm -rf /", "ffv1", "av1", "gif"])
        return OptionCase(["-o", f"{{d}}/out{ext}", "--codec", c], f"{what} {c!r}")
    if what == "bad crf":
        c = rng.choice(["-1", "nan", "inf", "1e9", "52", "0"])
        return OptionCase(["-o", f"{{d}}/out{ext}", "--crf", c], f"{what} {c}")
    if what == "lossless to audio":
        return OptionCase(["-o", "{d}/out.wav", "--lossless"], what)
    if what == "long name":
        return OptionCase(["-o", "{d}/" + "n" * 300 + ext], what)
    return OptionCase(["-o", "{d}/new\nline" + ext], what, output="new\nline" + ext)


BUNDLE_KINDS = {
    "clean": mut_clean, "truncate": mut_truncate, "append": mut_append, "bitflip": mut_bitflip,
    "overwrite": mut_overwrite, "frame": mut_frame, "st_header_len": mut_header_len, "st_header_json": mut_header_json,
    "st_offsets": mut_offsets, "st_dtype": mut_dtype, "st_shape": mut_shape, "st_tensors": mut_tensors,
    "meta_delete": mut_meta_delete, "meta_type": mut_meta_type, "meta_number": mut_meta_number,
    "meta_config": mut_meta_config, "meta_geometry": mut_meta_geometry, "meta_strings": mut_meta_strings,
    "meta_version": mut_meta_version, "bomb": mut_bomb,
}
OPTION_KINDS = {"opt_scale": opt_scale, "opt_size": opt_size, "opt_rate": opt_rate, "opt_time": opt_time,
                "opt_output": opt_output}
KINDS = [*BUNDLE_KINDS, *OPTION_KINDS]


# ----------------------------------------------------------------- cases ----
@dataclass
class Command:
    name: str
    args: list[str]  # "{d}" is the case folder, "{b}" the bundle, "{o}" the original
    output: str | None = None  # relative path a successful decode must have written ("-": stdout)


@dataclass
class Case:
    kind: str
    index: int
    seed: Seed
    description: str
    data: bytes | None  # the bundle's bytes; None: the seed's, as written
    commands: list[Command]
    setup: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.index}"


def make_case(kind: str, index: int, seed: int, ctx) -> Case:
    rng = random.Random(f"{seed}/{kind}/{index}")
    s = rng.choice(ctx.seeds)
    if kind in OPTION_KINDS:
        oc = OPTION_KINDS[kind](rng, s, ctx)
        extra = rng.choice([[], ["-q"], ["--json"]])
        return Case(kind, index, s, f"{s.name}: {oc.description}", None,
                    [Command("decode", ["decode", "{b}", *oc.args, *extra], oc.output)], oc.setup)
    data, desc = BUNDLE_KINDS[kind](rng, s, ctx)
    out, extra = _out_for(s, rng)
    setup = []
    if rng.random() < 0.2 and s.modality != "audio":
        out, extra = "frames/%03d.png", []
        setup = [("dir", "frames")]
    commands = [Command("info", ["info", "{b}", *rng.choice([[], ["--json"]])]),
                Command("decode", ["decode", "{b}", "-o", f"{{d}}/{out}", *extra, *rng.choice([[], ["-q"]])],
                        "frames" if out.startswith("frames/") else out),
                Command("psnr", ["psnr", "{o}", "{b}", *rng.choice([[], ["--json"]])])]
    if kind == "bomb" and not desc.startswith("valid bundle"):
        commands = commands[:1]  # every command decompresses the same way: once is enough
    return Case(kind, index, s, f"{s.name}: {desc}", data, commands, setup)


# ----------------------------------------------------------------- oracle ----
@dataclass
class CmdResult:
    name: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    exception: str | None = None  # an exception that escaped the command
    timed_out: bool = False
    rss_growth_kb: int = 0
    peak_rss_kb: int = 0
    left: list[str] = field(default_factory=list)  # files created or changed
    stray: list[str] = field(default_factory=list)  # hidden temporaries left behind
    missing_output: bool = False
    binary_stdout: bool = False  # decode -o -: media on standard output

    @property
    def first_line(self) -> str:
        for text in (self.stderr, self.stdout, self.exception or ""):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return ""


def check(r: CmdResult, limit: float, rss_bound_kb: int) -> list[str]:
    """The oracle: why this command's result is a failure (empty: it is not)."""
    why = []
    text = r.stdout + r.stderr
    if r.timed_out:
        why.append("hang")
    elif r.seconds > limit:
        why.append("slow")
    if r.exception:
        why.append("uncaught")
    if r.exit_code not in (0, 1, 2) and not r.timed_out and r.exit_code != NO_EXIT:
        why.append(f"exit{r.exit_code}")
    if "Traceback" in text:
        why.append("traceback")
    if "internal error" in text and r.exit_code != 3:
        why.append("internal-error")
    if r.exit_code == 1 and not r.exception:
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        if len(lines) != 1:
            why.append("multiline-error")
        elif not lines[0].startswith("error:"):
            why.append("odd-exit1-message")
    if r.exit_code != 0 and r.left:
        why.append("left-files")
    if r.stray:
        why.append("stray-temp")
    if r.missing_output and r.exit_code == 0:
        why.append("no-output")
    if r.rss_growth_kb > rss_bound_kb:
        why.append("rss")
    low = text.lower() + (r.exception or "").lower()
    if any(p in low for p in ALLOC_PATTERNS):
        why.append("alloc")
    if CONTROL.search(r.stderr) or (not r.binary_stdout and CONTROL.search(r.stdout)):
        why.append("control-chars")
    return why


# ---------------------------------------------------------------- memory ----
def _status_kb(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# ---------------------------------------------------------------- runner ----
NO_EXIT = -1  # the command never exited: interrupted by the timer, or an exception escaped it


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a command; a BaseException so that no ``except Exception`` swallows it."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def _snapshot(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in folder.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        out[str(p.relative_to(folder))] = ("d" if p.is_dir() else "f", st.st_size, st.st_mtime_ns)
    return out


@dataclass
class Outcome:
    case: Case
    results: list[CmdResult]
    reasons: dict[str, list[str]]  # command -> why it failed

    @property
    def status(self) -> str:
        if any(self.reasons.values()):
            return "failure"
        return "ok" if all(r.exit_code == 0 for r in self.results) else "rejected"

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)


class Fuzzer:
    """Runs cases in this process; holds the seeds, the bomb cache and the limits."""

    def __init__(self, workdir: Path, seeds: list[Seed], limit: float = DEFAULT_LIMIT,
                 rss_bound_mb: int = DEFAULT_RSS_BOUND_MB, seed: int = 0):
        from typer.testing import CliRunner

        from neofield.cli import app

        self.workdir, self.seeds, self.limit, self.seed = Path(workdir), seeds, limit, seed
        self.rss_bound_kb = rss_bound_mb * 1024
        self.bombs: dict = {}
        self.app, self.runner = app, CliRunner()
        self.can_reset_peak = _reset_peak()
        self.peak_rss_kb = _maxrss_kb()
        self.current: tuple[str, float] | None = None  # (label, hard deadline) for the watchdog

    def run_case(self, case: Case, keep: Path | None = None) -> Outcome:
        d = self.workdir / "cases" / f"{case.kind}-{case.index}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        bundle = d / "in.nf"
        bundle.write_bytes(case.seed.data if case.data is None else case.data)
        for what, rel in case.setup:
            if what == "dir":
                (d / rel).mkdir(parents=True, exist_ok=True)
            else:
                (d / rel).write_bytes(b"already here")
        results, reasons = [], {}
        for cmd in case.commands:
            args = [a.replace("{d}", str(d)).replace("{b}", str(bundle)).replace("{o}", str(case.seed.original))
                    for a in cmd.args]
            r = self._invoke(cmd.name, args, d, case.label)
            r.binary_stdout = any(pair == ("-o", "-") for pair in itertools.pairwise(args))
            if cmd.name == "decode" and r.exit_code == 0 and cmd.output:
                if cmd.output == "-":
                    r.missing_output = not r.stdout
                else:
                    target = d / cmd.output
                    r.missing_output = not (target.exists() and (target.is_dir() and any(target.iterdir())
                                                                 or target.is_file() and target.stat().st_size))
            r.stdout, r.stderr = (x.replace(str(d), "<dir>").replace(str(case.seed.original), "<original>")
                                  for x in (r.stdout, r.stderr))
            results.append(r)
            why = check(r, self.limit, self.rss_bound_kb)
            if why:
                reasons[cmd.name] = why
        if keep is not None and any(reasons.values()):
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(bundle, keep / f"{case.kind}-{case.index}.nf")
        shutil.rmtree(d, ignore_errors=True)
        return Outcome(case, results, reasons)

    def _invoke(self, name: str, args: list[str], d: Path, label: str) -> CmdResult:
        before = _snapshot(d)
        rss_before = _status_kb("VmRSS")
        if self.can_reset_peak:
            _reset_peak()
        maxrss_before = _maxrss_kb()
        old = signal.signal(signal.SIGALRM, _on_alarm)
        self.current = (f"{label} {name}", time.monotonic() + 3 * self.limit + 30)
        t0 = time.perf_counter()
        exit_code, stdout, stderr, exception, timed_out = 0, "", "", None, False
        try:
            signal.setitimer(signal.ITIMER_REAL, self.limit)
            try:
                res = self.runner.invoke(self.app, args, catch_exceptions=True)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            exit_code, stdout, stderr = res.exit_code, res.stdout, res.stderr
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                exception = f"{type(res.exception).__name__}: {_first(res.exception)}"
        except CaseTimeout:
            timed_out, exit_code = True, NO_EXIT
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001  e.g. a Rust panic (pyo3's PanicException is a BaseException)
            exception, exit_code = f"{type(exc).__name__}: {_first(exc)}", NO_EXIT
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            self.current = None
        seconds = time.perf_counter() - t0
        peak = _status_kb("VmHWM") if self.can_reset_peak else _maxrss_kb()
        growth = peak - (rss_before if self.can_reset_peak else maxrss_before)
        self.peak_rss_kb = max(self.peak_rss_kb, peak, _maxrss_kb())
        after = _snapshot(d)
        changed = sorted(k for k, v in after.items() if before.get(k) != v and v[0] == "f")
        stray = sorted(k for k in after if k not in before and (Path(k).name.startswith(".") or ".partial" in k))
        return CmdResult(name, exit_code, stdout, stderr, seconds, exception, timed_out, max(growth, 0), peak,
                         changed, stray)


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


# ---------------------------------------------------------------- report ----
@dataclass
class Report:
    outcomes: list[Outcome]
    peak_rss_kb: int
    seconds: float
    seed: int
    rss_bound_mb: int
    limit: float
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failure"]

    @property
    def total(self) -> int:
        return len(self.outcomes)

    def table(self) -> str:
        rows = defaultdict(Counter)
        for o in self.outcomes:
            rows[o.case.kind]["cases"] += 1
            rows[o.case.kind][o.status] += 1
        lines = [f"{'kind':<15} {'cases':>6} {'ok':>5} {'rejected':>9} {'failures':>9}"]
        total = Counter()
        for kind in KINDS:
            if kind in rows:
                c = rows[kind]
                total.update(c)
                lines.append(f"{kind:<15} {c['cases']:>6} {c['ok']:>5} {c['rejected']:>9} {c['failure']:>9}")
        lines.append(f"{'total':<15} {total['cases']:>6} {total['ok']:>5} {total['rejected']:>9} {total['failure']:>9}")
        return "\n".join(lines)

    def failure_lines(self) -> list[str]:
        out = []
        for o in self.failures:
            for r in o.results:
                if o.reasons.get(r.name):
                    out.append(failure_line(o, r, self.seed))
        return out

    def signatures(self) -> list[tuple[str, int, str]]:
        """Distinct failures: (signature, count, one reproduction)."""
        groups: dict[str, list[str]] = {}
        for o in self.failures:
            for r in o.results:
                why = o.reasons.get(r.name)
                if why:
                    sig = f"{o.case.kind} {r.name} [{','.join(why)}] exit={r.exit_code} | {normalise(r.first_line)}"
                    groups.setdefault(sig, []).append(reproduce(o, self.seed))
        return [(sig, len(v), v[0]) for sig, v in sorted(groups.items())]

    def slowest(self) -> Outcome | None:
        return max(self.outcomes, key=lambda o: o.seconds, default=None)

    def text(self, show: int | None = None) -> str:
        lines = [self.table(), ""]
        slow = self.slowest()
        lines.append(f"peak RSS {self.peak_rss_kb / 1024:,.0f} MiB (bound: {self.rss_bound_mb} MiB growth per "
                     f"command); per-command limit {self.limit:g} s; {self.total} cases in {self.seconds:.1f} s")
        if slow:
            lines.append(f"slowest case: {slow.case.label} {slow.seconds:.2f} s ({slow.case.description[:120]})")
        growth = max(((r.rss_growth_kb, o) for o in self.outcomes for r in o.results), key=lambda t: t[0],
                     default=None)
        if growth:
            lines.append(f"largest RSS growth: {growth[0] / 1024:,.0f} MiB in {growth[1].case.label}")
        lines += self.notes
        fl = self.failure_lines()
        if fl:
            lines += ["", f"failures ({len(self.failures)} cases, {len(fl)} commands):"]
            lines += fl[:show] if show else fl
            if show and len(fl) > show:
                lines.append(f"... {len(fl) - show} more")
            sigs = self.signatures()
            lines += ["", f"distinct failure signatures ({len(sigs)}):"]
            lines += [f"{n:>4}x {sig}\n       repro: {repro}" for sig, n, repro in sigs]
        return "\n".join(lines)


def normalise(line: str) -> str:
    line = line.encode("unicode_escape").decode()
    line = re.sub(r"<dir>\S*", "<path>", line)
    line = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", line)
    return line[:140]


def reproduce(o: Outcome, seed: int) -> str:
    return f"python benchmarks/fuzz.py --seed {seed} --only {o.case.kind} --case {o.case.index}"


def failure_line(o: Outcome, r: CmdResult, seed: int) -> str:
    first = r.first_line.encode("unicode_escape").decode()[:200]
    return (f"FAIL {o.case.label} {r.name} [{','.join(o.reasons[r.name])}] exit={r.exit_code} "
            f"{r.seconds:.2f}s rss+{r.rss_growth_kb // 1024}MiB | {o.case.description[:160]!s} | {first}"
            + (f" | left: {', '.join(r.left)}" if r.left and r.exit_code else "")
            + (f" | stray: {', '.join(r.stray)}" if r.stray else "")
            + f" | {reproduce(o, seed)}")


# ------------------------------------------------------------------- run ----
def schedule(cases: int, only: str | None = None, case: int | None = None) -> list[tuple[str, int]]:
    """Case ``i`` is kind ``KINDS[i % K]``, number ``i // K``; ``only`` runs that kind's numbers 0..cases-1."""
    if only is not None:
        if only not in KINDS:
            raise SystemExit(f"unknown kind {only!r}; choose one of {', '.join(KINDS)}")
        return [(only, case)] if case is not None else [(only, n) for n in range(cases)]
    if case is not None:
        raise SystemExit("--case needs --only KIND")
    return [(KINDS[i % len(KINDS)], i // len(KINDS)) for i in range(cases)]


def run(cases: int = 300, seed: int = 0, only: str | None = None, case: int | None = None,
        limit: float = DEFAULT_LIMIT, rss_bound_mb: int = DEFAULT_RSS_BOUND_MB,
        as_headroom_mb: int | None = DEFAULT_AS_HEADROOM_MB, workdir: Path | None = None,
        seeds_dir: Path | None = None, keep: Path | None = None, progress=None,
        max_failures: int | None = None, threads: int | None = 1) -> Report:
    """Run the fuzzer; returns a :class:`Report`. Restores the signal handler, the address-space
    limit and torch's thread count.

    ``threads`` (default 1): torch's intra-op threads while the cases run. The decodes here are
    tiny, and with 2 OpenMP threads on a 2-core machine one busy neighbour process makes them
    spin-wait: the same 38 k-point decode took 0.3 s on 1 thread and 8-11 s on 2.
    """
    import torch  # imported before the address-space cap, which counts what it maps

    t0 = time.perf_counter()
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="neofield-fuzz-")
        workdir = Path(tmp.name)
    workdir = Path(workdir)
    old_env = os.environ.pop("NEOFIELD_DEBUG", None)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    watchdog_stop = threading.Event()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    # The command line's limits, scaled to the fuzzer's time limit: a legal decode that the real limits
    # allow (up to 4 h) would otherwise count as a hang. What is checked is that the limits hold: a case
    # beyond them must be refused up front, in one line, and one within them must finish in time.
    import neofield.schema as schema

    old_limits = schema.DEFAULT_LIMITS
    schema.DEFAULT_LIMITS = dataclasses.replace(old_limits, decode_seconds=limit / 4)
    try:
        seeds = make_seeds(Path(seeds_dir) if seeds_dir else workdir / "seeds")
        fz = Fuzzer(workdir, seeds, limit, rss_bound_mb, seed)
        notes = []
        if not fz.can_reset_peak:
            notes.append("note: /proc/self/clear_refs not writable: RSS growth is measured on ru_maxrss, which only "
                         "sees new highs")
        if as_headroom_mb:
            cap = _status_kb("VmSize") * 1024 + as_headroom_mb * MiB
            if old_as[0] == resource.RLIM_INFINITY or cap < old_as[0]:
                resource.setrlimit(resource.RLIMIT_AS, (cap, old_as[1]))
                notes.append(f"address space capped at {cap / GiB:.1f} GiB (RLIMIT_AS, {as_headroom_mb} MiB above "
                             "the start)")
        threading.Thread(target=_watchdog, args=(fz, watchdog_stop), daemon=True).start()
        outcomes = []
        for kind, n in schedule(cases, only, case):
            c = make_case(kind, n, seed, fz)
            o = fz.run_case(c, keep)
            outcomes.append(o)
            if progress:
                progress(o)
            if max_failures is not None and sum(x.status == "failure" for x in outcomes) >= max_failures:
                notes.append(f"stopped after {max_failures} failures")
                break
        return Report(outcomes, fz.peak_rss_kb, time.perf_counter() - t0, seed, rss_bound_mb, limit, notes)
    finally:
        schema.DEFAULT_LIMITS = old_limits
        watchdog_stop.set()
        torch.set_num_threads(old_threads)
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        if old_env is not None:
            os.environ["NEOFIELD_DEBUG"] = old_env
        if tmp is not None:
            tmp.cleanup()


def _watchdog(fz: Fuzzer, stop: threading.Event) -> None:
    """SIGALRM cannot stop a command stuck inside C code: past 3x the limit + 30 s, say which and exit."""
    while not stop.wait(1.0):
        current = fz.current
        if current and time.monotonic() > current[1]:
            sys.__stderr__.write(f"FAIL {current[0]} [hang, uninterruptible] still running past "
                                 f"{3 * fz.limit + 30:g} s; exiting\n")
            sys.__stderr__.flush()
            os._exit(4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cases", type=int, default=300, help="number of cases (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="randomness seed (default 0)")
    ap.add_argument("--only", help=f"one kind: {', '.join(KINDS)}")
    ap.add_argument("--case", type=int, help="with --only: run that one case number")
    ap.add_argument("--limit", type=float, default=DEFAULT_LIMIT, help="seconds per command (default 10)")
    ap.add_argument("--rss-bound-mb", type=int, default=DEFAULT_RSS_BOUND_MB,
                    help="peak-RSS growth a command may cause (default 512)")
    ap.add_argument("--as-headroom-mb", type=int, default=DEFAULT_AS_HEADROOM_MB,
                    help="RLIMIT_AS this far above the start; 0: no cap (default 4096)")
    ap.add_argument("--seeds-dir", type=Path, help="keep (and reuse) the seed bundles here")
    ap.add_argument("--keep", type=Path, help="copy each failing case's bundle into this folder")
    ap.add_argument("--max-failures", type=int, help="stop after this many failing cases")
    ap.add_argument("--show", type=int, default=None, help="print at most this many failure lines")
    ap.add_argument("--threads", type=int, default=1, help="torch threads while the cases run; 0: leave as is "
                                                           "(default 1)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case as it runs")
    args = ap.parse_args(argv)
    os.environ["COLUMNS"] = "10000"  # error lines must not be hard-wrapped when this runs on a terminal

    def progress(o: Outcome) -> None:
        if args.verbose:
            codes = ",".join(str(r.exit_code) for r in o.results)
            said = next((r.first_line for r in o.results if r.exit_code != 0), "")
            print(f"{o.case.label:<18} {o.status:<9} {o.seconds:6.2f}s exit={codes:<8} {o.case.description[:100]}"
                  + (f"  => {said[:140]!r}" if said else ""), file=sys.stderr, flush=True)

    report = run(args.cases, args.seed, args.only, args.case, args.limit, args.rss_bound_mb, args.as_headroom_mb,
                 seeds_dir=args.seeds_dir, keep=args.keep, progress=progress, max_failures=args.max_failures,
                 threads=args.threads)
    print(report.text(args.show))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
