"""Make ``neofield/bundle.zdict``, the zstd dictionary that bundles of format v6 are compressed under.

    python scripts/make_bundle_dictionary.py   # run once, for format v6; never again for it

A bundle's header (the safetensors JSON: its tensors' names, types and offsets, and neofield's metadata)
says much the same in every bundle but for its numbers, and costs ~960 bytes under zstd alone. Laid before
a bundle's bytes as a dictionary, the same text costs zstd a few bytes a reference instead. This script
encodes the shipped examples (``examples/``) as a user's commands would, each for a few seconds (what is
fitted does not matter, only what the headers say), and writes their headers one after another, the least
common first: zstd refers to the nearest bytes at the least cost.

A bundle can be read only with the very dictionary it was written with, so the file this writes is part of
format v6: its SHA-256 goes into ``neofield/bundle.py`` (``DICTIONARY_SHA256``), and a rerun, which gives
other bytes (the fits' times and losses are in the headers), would be a new format version.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import neofield  # noqa: E402
from neofield import bundle  # noqa: E402

EXAMPLES = ROOT / "examples"
# (example, encode options), least common first; the default video last
CASES = [
    ("bikes_1s.mp4", {"arch": "neomlp", "weights_dtype": "float16"}),
    ("bbb_1s.mp4", {}),
    ("bach_2s.flac", {}),
    ("bikes_1s.mp4", {"size": "3KB"}),
    ("bikes_1s.mp4", {}),
]
SECONDS = 5.0


def header(payload: bytes) -> bytes:
    """The safetensors JSON header of a bundle's inflated bytes (without its 8-byte length)."""
    (size,) = struct.unpack("<Q", payload[:8])
    json.loads(payload[8:8 + size])  # it is JSON
    return payload[8:8 + size]


def main() -> None:
    bundle.dictionary = lambda: None  # compress and read these bundles without one: this makes it
    out = bundle.DICTIONARY
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, options) in enumerate(CASES):
            path = Path(tmp) / f"{i}.nf"
            neofield.encode(EXAMPLES / name, path, time_budget=SECONDS, force=True, checkpoint_every=None,
                            **options)
            parts.append(header(bundle.decompress(path.read_bytes())))
            print(f"{name} {options}: {path.stat().st_size:,} bytes, header {len(parts[-1]):,}")
    data = b"".join(parts)
    out.write_bytes(data)
    print(f"wrote {out.relative_to(ROOT)}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
