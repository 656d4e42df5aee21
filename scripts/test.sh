#!/usr/bin/env bash
# Set up, then check the import contracts and run the whole test suite (CPU, about 8 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports  # imports run one way (pyproject.toml: [tool.importlinter])
.venv/bin/python -m pytest "$@"
