"""Data-parallel fitting: N processes under torchrun against one process, at equal total points.

    python benchmarks/ddp.py [--procs 2] [--steps 2000] [--set-epochs 20]

Runs the commands a user would run, one after the other, on the same cores:

* ``encode``: ``neofield encode examples/bikes_1s.mp4 --steps S`` (the demo
  clip, global batch 1,024), as one process with every core's threads, then as
  ``torchrun --nproc-per-node N -m neofield encode ...`` with one thread each.
* ``set fit``: ``neofield set fit digits --epochs E`` (Algorithm 1 on the
  digits' training split), the same two ways.

Both runs see the same number of points (steps x global batch); the table
gives each run's PSNR and points per second, and the ratio of the N-process
speed to the one-process speed measured in the same run. Run nothing else
meanwhile: the speeds are timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from equal_time import cpu_name  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "examples" / "bikes_1s.mp4"


def run(args: list[str], procs: int, threads: int) -> dict:
    """One command's --json result, as one process or under torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "neofield"] if procs == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), "-m",
        "neofield"]
    done = subprocess.run([*launcher, *args, "--json", "--force"], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=2, help="processes of the data-parallel runs")
    ap.add_argument("--steps", type=int, default=2000, help="steps of the encode runs (global batch 1,024)")
    ap.add_argument("--set-epochs", type=float, default=20.0, help="epochs of the set fits")
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"# Data-parallel fitting: {args.procs} processes x {max(1, cores // args.procs)} thread(s) against "
          f"1 process x {cores} threads\n\n{cpu_name()}, {cores} cores\n")
    print("| job | processes | steps | points/s | PSNR dB | speed vs 1 process |\n|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            f"encode demo clip, {args.steps:,} steps": (
                ["encode", str(CLIP), "-o", f"{tmp}/clip.nf", "--steps", str(args.steps), "--device", "cpu",
                 "--compile", "off"],
                lambda r: (r["fit"]["steps"], r["fit"]["points_per_second"], r["quality"]["video_psnr_db"])),
            f"set fit digits, {args.set_epochs:g} epochs": (
                ["set", "fit", "digits", "-o", f"{tmp}/digits.nf", "--epochs", str(args.set_epochs),
                 "--device", "cpu"],
                lambda r: (r["steps"], r["points_per_second"], r["mean_psnr_db"])),
        }
        for job, (command, read) in jobs.items():
            base = None
            for procs in (1, args.procs):
                steps, speed, quality = read(run(command, procs, max(1, cores // procs)))
                base = base or speed
                print(f"| {job} | {procs} | {steps:,} | {speed:,.0f} | {quality:.2f} | {speed / base:.2f}x |",
                      flush=True)


if __name__ == "__main__":
    main()
