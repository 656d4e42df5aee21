"""Bundles pinned by their sha256: a change to the code that moves one byte of what ``encode`` or
``set fit`` writes, for the same options and seed, fails here.

Pins are kept per kind of machine (its CPU, torch and thread count: floating point differs from one CPU
to another), each kind with its own set: a case is compared on every kind that pinned it, skipped (saying so)
on a kind that did not, and a case no kind has pinned fails. Each bundle is hashed with the fit's two clock
readings (``fit.seconds``, ``fit.points_per_second``) set to zero, since those differ from run to run; every
other byte, coded streams, quantization tables and metadata, is pinned.

Pin this kind of machine, or regenerate its pins on purpose after a change that is meant to move bytes::

    NEOFIELD_REPIN=1 .venv/bin/python -m pytest tests/test_pinned_bundles.py

A change that moves a case's bytes must also drop that case from the kinds it cannot repin here (their
pins would fail there): ``NEOFIELD_UNPIN=name,name`` with the same command does both.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import struct
from pathlib import Path

import pytest
import safetensors.torch
import torch
import zstandard
from typer.testing import CliRunner

from conftest import BACH, BBB, BIKES
from neofield.bundle import decompress
from neofield.cli import app

PINS = Path(__file__).parent / "data" / "pinned_bundles.json"
REPIN = os.environ.get("NEOFIELD_REPIN") == "1"
CLOCK = ("seconds", "points_per_second")

# Each case is a command line, small enough to run in a second or two, and together they cross every
# path that decides a byte: NeoMLP in time (linear and nearest latents), sound, video with sound under
# rate control, both targets, a baseline stored as float16, hand-set depths, and a set bundle; and the
# latent-pyramid field (neogrid) on video at fixed depths, on video with sound under a size target, and on sound at
# a fixed lambda.
CASES = {
    "video": ["encode", str(BIKES), "--max-frames", "4", "--resize", "32x14", "--steps", "60", "--arch", "neomlp"],
    "video_options": ["encode", str(BIKES), "--max-frames", "3", "--resize", "24x12", "--steps", "40",
                      "--latents", "nearest", "--segments", "2", "--bits", "5", "--latent-bits", "7",
                      "--precision", "float32", "--attention", "softmax", "--rff-sigma", "1,1,2",
                      "--batch-size", "256", "--lr", "2e-3", "--warmup", "5", "--seed", "3", "--arch", "neomlp"],
    "audio_psnr": ["encode", str(BACH), "--duration", "0.1", "--steps", "60", "--psnr", "30", "--arch", "neomlp"],
    "av_size": ["encode", str(BBB), "--duration", "0.12", "--resize", "16x10", "--steps", "50", "--size", "9KB",
                "--arch", "neomlp"],
    "siren_float16": ["encode", str(BIKES), "--max-frames", "3", "--resize", "24x12", "--steps", "30",
                      "--arch", "siren", "--dtype", "float16"],
    "set_digits": ["set", "fit", "digits", "--limit", "12", "--steps", "30"],
    "neogrid_video": ["encode", str(BIKES), "--max-frames", "4", "--resize", "32x14", "--steps", "60", "--bits", "6"],
    "neogrid_av_size": ["encode", str(BBB), "--duration", "0.12", "--resize", "16x10", "--steps", "50", "--size",
                        "6KB"],
    "neogrid_audio_lambda": ["encode", str(BACH), "--duration", "0.1", "--steps", "60", "--lambda", "0.001"],
}


def machine() -> dict:
    """What floating point results depend on: the CPU, the torch build and its thread count."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "arch": platform.machine(), "torch": torch.__version__,
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def canonical_sha256(data: bytes) -> str:
    """sha256 of a bundle's inflated safetensors payload, its fit's clock readings set to zero."""
    payload = decompress(data)
    (size,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8:8 + size])
    meta = json.loads(header["__metadata__"]["neofield"])
    for key in CLOCK:
        if key in meta.get("fit", {}):
            meta["fit"][key] = 0
    header["__metadata__"]["neofield"] = json.dumps(meta, sort_keys=True)
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    h.update(payload[8 + size:])
    return h.hexdigest()


def encode_case(name: str, folder: Path) -> str:
    out = folder / f"{name}.nf"
    result = CliRunner().invoke(app, [*CASES[name], "-o", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return canonical_sha256(out.read_bytes())


UNPIN = {n for n in os.environ.get("NEOFIELD_UNPIN", "").split(",") if n}


def pins() -> list[dict]:
    """Every kind of machine's pins, ``[{"machine": ..., "bundles": {case: sha256}}]`` (a file of one kind,
    as the first pins were written, is read as a list of it)."""
    if not PINS.exists():
        return []
    data = json.loads(PINS.read_text())
    return data["machines"] if "machines" in data else [data]


def pins_here(kinds: list[dict]) -> dict:
    return next((k["bundles"] for k in kinds if k["machine"] == machine()), {})


@pytest.mark.parametrize("name", list(CASES))
def test_bundle_bytes_are_those_pinned(name, tmp_path):
    kinds = pins()
    if REPIN:
        here = pins_here(kinds)
        if not here:
            kinds.append({"machine": machine(), "bundles": here})
        here[name] = encode_case(name, tmp_path)
        if name in UNPIN:  # its bytes moved: the other kinds' pins of it are stale
            for kind in kinds:
                if kind["machine"] != machine():
                    kind["bundles"].pop(name, None)
        PINS.parent.mkdir(exist_ok=True)
        PINS.write_text(json.dumps({"machines": kinds}, indent=2, sort_keys=True) + "\n")
        return
    assert any(name in k["bundles"] for k in kinds), f"no machine pins {name}: pin it with NEOFIELD_REPIN=1"
    here = pins_here(kinds)
    if name not in here:
        pytest.skip(f"{name} is pinned on {', '.join(k['machine']['cpu'] for k in kinds if name in k['bundles'])}, "
                    f"not on this {machine()}: pin it here with NEOFIELD_REPIN=1")
    assert encode_case(name, tmp_path) == here[name]


def test_canonical_hash_sees_a_changed_byte(tmp_path):
    """The hash covers every byte but the clock readings: a coded byte changed is seen, a clock is not."""
    sha = encode_case("video", tmp_path)
    payload = decompress((tmp_path / "video.nf").read_bytes())
    tensors = safetensors.torch.load(payload)
    meta = json.loads(_metadata(payload))

    def rebuilt(tensors, meta) -> bytes:
        data = safetensors.torch.save(tensors, metadata={"neofield": json.dumps(meta, sort_keys=True)})
        return zstandard.ZstdCompressor().compress(data)

    assert canonical_sha256(rebuilt(tensors, meta)) == sha  # the same bundle, serialised again
    retimed = {**meta, "fit": {**meta["fit"], "seconds": 123.0, "points_per_second": 4.0}}
    assert canonical_sha256(rebuilt(tensors, retimed)) == sha
    stream = tensors["latents.stream"].clone()
    stream[-1] ^= 1
    assert canonical_sha256(rebuilt({**tensors, "latents.stream": stream}, meta)) != sha
    assert canonical_sha256(rebuilt(tensors, {**meta, "preset": "small"})) != sha


def _metadata(payload: bytes) -> str:
    (size,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8:8 + size])["__metadata__"]["neofield"]


def test_pins_are_read_per_kind_of_machine_from_either_layout(tmp_path, monkeypatch):
    import test_pinned_bundles as module

    here, other = machine(), {**machine(), "cpu": "another CPU"}
    monkeypatch.setattr(module, "PINS", tmp_path / "pins.json")
    (tmp_path / "pins.json").write_text(json.dumps({"machine": other, "bundles": {"video": "ab"}}))  # the first layout
    assert pins() == [{"machine": other, "bundles": {"video": "ab"}}] and pins_here(pins()) == {}
    kinds = [{"machine": other, "bundles": {"video": "ab"}}, {"machine": here, "bundles": {"video": "cd"}}]
    (tmp_path / "pins.json").write_text(json.dumps({"machines": kinds}))
    assert pins_here(pins()) == {"video": "cd"}
