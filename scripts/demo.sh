#!/usr/bin/env bash
# The main job on the embedded defaults: bundled sample, local model, SQLite catalog.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
$BIN/parallelner inspect examples/wikineural-en-sample.conllu
$BIN/parallelner inspect examples/cluener-zh-sample.jsonl --format cluener
