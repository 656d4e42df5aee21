"""The hostile bundles and options of issue 12, each run as a real command.

    python benchmarks/hostile.py [--bundle clip.nf]

Crafts each case from a real bundle (by default it encodes a few frames of
the shipped demo clip), runs the command line on it in a subprocess, and
prints a table: the case, the command, the exit code, the first line the
command printed, its peak memory and time. Every row should end in exit 1
and one line, or exit 0 for a legal request; the script exits non-zero if a
row shows a traceback, an internal error (exit 3), a time-out or a leftover
output file. The random counterpart is ``benchmarks/fuzz.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import safetensors.torch
import zstandard

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from neofield.bundle import decompress  # noqa: E402  (a bundle inflates under the format's dictionary)
NEOFIELD = [sys.executable, "-m", "neofield"]
TIME_LIMIT = 120  # seconds a case may take before it counts as a hang


def read(data: bytes) -> tuple[dict, dict]:
    payload = decompress(data)
    tensors = safetensors.torch.load(payload)
    size = int.from_bytes(payload[:8], "little")
    meta = json.loads(json.loads(payload[8:8 + size])["__metadata__"]["neofield"])
    return tensors, meta


def write(tensors: dict, meta, content_size: bool = True) -> bytes:
    payload = safetensors.torch.save(tensors, {"neofield": json.dumps(meta)})
    return zstandard.ZstdCompressor(write_content_size=content_size).compress(payload)


def zeros(n: int, stated: bool) -> bytes:
    """A zstd frame of ``n`` zero bytes, compressed in 1 MB pieces (never held whole)."""
    sink = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=stated)
    with compressor.stream_writer(sink, size=n if stated else -1, closefd=False) as writer:
        piece = bytes(1 << 20)
        for _ in range(n >> 20):
            writer.write(piece)
    return sink.getvalue()


def mutate(meta: dict, path: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    *parents, key = path.split(".")
    node = meta
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return meta


DELETE = object()


def cases(data: bytes) -> list[tuple[str, bytes | None, list[str]]]:
    """(name, bundle bytes or None for the original, command arguments after the bundle path)."""
    tensors, meta = read(data)
    bundle = lambda m: write(tensors, m)  # noqa: E731
    out = []
    for key, value in [("ffn_dim", 10**9), ("layers", 10**6), ("rff_dim", 10**12), ("dim", 10**7)]:
        out.append((f"config bomb: {key} {value:g}", bundle(mutate(meta, f"model.config.{key}", value)), ["info"]))
    out.append(("config bomb: segments 1e9", bundle(mutate(meta, "model.segmentation.segments", 10**9)), ["decode"]))
    out.append(("decompression bomb: 3 GB of zeros, size stated", zeros(3 << 30, stated=True), ["info"]))
    out.append(("decompression bomb: 3 GB of zeros, no size", zeros(3 << 30, stated=False), ["info"]))
    for label, m in [("metadata a list", []), ("metadata null", None), ("metadata a string", "x")]:
        out.append((label, write(tensors, m), ["info"]))
    for path in ["geometry", "geometry.duration", "geometry.video.fps", "modality", "coordinates"]:
        out.append((f"missing {path}", bundle(mutate(meta, path, DELETE)), ["decode"]))
    for path, value in [("geometry.duration", "long"), ("geometry.duration", float("nan")),
                        ("geometry.duration", float("inf")), ("model.config.heads", 0),
                        ("model.config.heads", -2), ("model.segmentation.time_index", 9)]:
        out.append((f"{path} = {value!r}", bundle(mutate(meta, path, value)), ["decode"]))
    payload = bytearray(decompress(data))
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8:8 + size])
    name = sorted(k for k in header if k != "__metadata__")[0]
    header[name]["data_offsets"][1] += 4096
    text = json.dumps(header).encode()
    out.append(("inconsistent safetensors offsets",
                zstandard.ZstdCompressor().compress(len(text).to_bytes(8, "little") + text + payload[8 + size:]),
                ["decode"]))
    out.append(("markup in the source name", bundle(mutate(meta, "source.name", "[/][bold red]x[/]\x1b[31m")),
                ["info"]))
    out.append(("geometry of 1e9 pixels", bundle(mutate(mutate(meta, "geometry.video.width", 40000),
                                                        "geometry.video.height", 25000)), ["decode"]))
    out.append(("fps 1e9", bundle(mutate(meta, "geometry.video.fps", 1e9)), ["decode"]))
    for args in (["--scale", "1000"], ["--size", "20000x20000"], ["--size", "16384x16384"], ["--scale", "inf"],
                 ["--start", "nan"], ["--sample-rate", "1000000000000"], ["--fps", "1e9"]):
        out.append(("decode " + " ".join(args), None, ["decode", *args]))
    out.append(("legal 1920x1080 decode of 3 frames", None, ["decode", "--size", "1920x1080", "--end", "0.12"]))
    return out


def run(args: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """Exit code, output, seconds and peak RSS (MB) of one command (killed after ``TIME_LIMIT``)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(NEOFIELD + args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "COLUMNS": "200"})
        timer = threading.Timer(TIME_LIMIT, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory, not all children's
        timer.cancel()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        log.seek(0)
        text = log.read().strip()
    if code == -9:
        text = f"TIMEOUT after {TIME_LIMIT} s\n{text}"
    return code, text, time.perf_counter() - t, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, help="a real bundle to start from (default: encode the demo clip)")
    args = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="neofield-hostile-") as folder:
        work = Path(folder)
        base = args.bundle
        if base is None:
            base = work / "base.nf"
            subprocess.run(NEOFIELD + ["encode", str(REPO / "examples" / "bikes_1s.mp4"), "-o", str(base),
                                       "--max-frames", "3", "--steps", "30", "-q"], check=True)
        data = base.read_bytes()
        print("| case | command | exit | first line | peak MB | s |")
        print("|---|---|---|---|---|---|")
        for i, (name, crafted, argv) in enumerate(cases(data)):
            path = base
            if crafted is not None:
                path = work / f"case{i}.nf"
                path.write_bytes(crafted)
            command, *options = argv
            out = work / f"out{i}.mp4"
            cli = [command, str(path), *options] + (["-o", str(out)] if command == "decode" else [])
            code, text, seconds, peak = run(cli, work)
            lines = [line for line in text.splitlines() if line.strip()]
            first = lines[0] if lines else ""
            bad = (code not in (0, 1) or "Traceback" in text or "internal error" in text
                   or (code != 0 and out.exists()) or (code == 1 and len(lines) != 1))
            failures += bad
            shown = "neofield " + " ".join([command, path.name, *options])
            print(f"| {name} | `{shown}` | {code}{' FAIL' if bad else ''} | {first[:160]} | {peak:,.0f} | "
                  f"{seconds:.1f} |")
            out.unlink(missing_ok=True)
    print(f"\n{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
