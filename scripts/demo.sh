#!/usr/bin/env bash
# Set up, then encode the shipped 1 s bikes clip, decode it at twice the
# resolution and frame rate, and measure the result. Writes into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
NF=.venv/bin/neofield
time "$NF" encode examples/bikes_1s.mp4 -o out/bikes.nf --force
time "$NF" decode out/bikes.nf --scale 2 -o out/bikes_x2.mp4 --force
"$NF" psnr examples/bikes_1s.mp4 out/bikes.nf
echo "decoded at 2x: out/bikes_x2.mp4"
