#!/usr/bin/env bash
# GPU smoke run of the training pipeline: real pairs -> store tag -> instruction data ->
# LoRA SFT on CUDA in bf16 (gradient checkpointing, length-grouped batches) -> evaluation.
# Prints steps/s, tokens/s and peak GPU memory as JSON.
#
#   training/scripts/gpu_smoke.sh                 # small Llama built from a config (no download)
#   training/scripts/gpu_smoke.sh /models/qwen7b  # a real base model directory instead
#
# Needs the train extra with a CUDA build of torch on the GPU machine
# (pip install -e '.[train]'); the config is training/configs/gpu-smoke.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
"$PY" - <<'PYCHECK'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_smoke: no CUDA GPU visible to torch {torch.__version__}; "
             "this script measures the GPU path (use python -m training.smoke --device cpu)")
print(f"gpu_smoke: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
PYCHECK
exec "$PY" -m training.smoke --config training/configs/gpu-smoke.yaml --work runs/gpu-smoke \
  --device cuda ${1:+--base-model "$1"}
