#!/usr/bin/env bash
# Pack what scripts/gpu_bench.py needs on a torch-only machine: the durr source and the script.
#   scripts/gpu_bench.sh [ARCHIVE]        (default: gpu_bench.tar.gz in the current folder)
# There:
#   tar xzf gpu_bench.tar.gz && PYTHONPATH=. python scripts/gpu_bench.py --out results.json
set -euo pipefail
archive="$(realpath -m "${1:-gpu_bench.tar.gz}")"
cd "$(dirname "$0")/.."
tar czf "$archive" --exclude=__pycache__ durr scripts/gpu_bench.py
echo "packed $archive ($(du -h "$archive" | cut -f1))"
