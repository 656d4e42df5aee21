#!/usr/bin/env bash
# Create .venv with neofield and its test tools. Safe to run again.
#
# torch is installed before neofield so that pip never resolves it upward to a
# multi-GB CUDA build on a machine without a GPU:
#   * a torch already in .venv is kept;
#   * with an NVIDIA GPU (nvidia-smi works), pip's default torch (CUDA) is used;
#   * otherwise torch==2.13.0, which on our CPU machines is a wheel on local
#     disk; elsewhere set NEOFIELD_TORCH_INDEX=https://download.pytorch.org/whl/cpu
#     to take the CPU build from PyTorch's index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${PIP[@]}" torch
  elif [ -n "${NEOFIELD_TORCH_INDEX:-}" ]; then
    "${PIP[@]}" torch==2.13.0 --index-url "$NEOFIELD_TORCH_INDEX"
  else
    "${PIP[@]}" torch==2.13.0
  fi
fi
"${PIP[@]}" -e ".[test,sets]"
.venv/bin/python -c "import torch, neofield; print(f'neofield {neofield.__version__} ready (torch {torch.__version__})')"
