#!/usr/bin/env bash
# The main job on the embedded defaults: the bundled samples, the local model (Gemma 3
# 270M on llama-cpp-python), a SQLite Iceberg catalog under ./.parallelner, and an
# ephemeral Prefect API. Both directions of the paper: en->zh and zh->en.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PARALLELNER_HOME="${PARALLELNER_HOME:-.parallelner}"

echo "== 1. inspect the bundled samples"
$BIN/parallelner inspect examples/wikineural-en-sample.conllu
$BIN/parallelner inspect examples/cluener-zh-sample.jsonl --format cluener

echo "== 2. WikiNEuRal English -> Chinese (local model, CPU)"
$BIN/parallelner run examples/wikineural-en-sample.conllu --to zh --output out/demo

echo "== 3. CLUENER Chinese -> English (local model, CPU)"
$BIN/parallelner run examples/cluener-zh-sample.jsonl --format cluener --to en --output out/demo

echo "== 4. the dataset's snapshots"
$BIN/parallelner snapshot list
echo
echo "Rows: out/demo/*.parquet   Quality reports: $PARALLELNER_HOME/reports/"
