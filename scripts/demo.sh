#!/usr/bin/env bash
# The first ten minutes: every user's path on the embedded defaults, ending with data a
# researcher can load. No network beyond what `make install` already fetched.
#
#   data engineer  the pipeline with the embedded local model (Gemma 3 270M on
#                  llama-cpp-python), en->zh and zh->en, and what its report says;
#                  then human-translated pairs (Europarl en-de) projected and checked the
#                  same way, so that the rest of the walk has correct, accepted rows
#   researcher     tag, export, datasets.load_dataset, KnowCoder-style instruction data,
#                  a tiny CPU model trained a few steps and evaluated
#   annotator      what `parallelner review push` sends to Label Studio (for real only
#                  when PARALLELNER_LABEL_STUDIO_URL answers)
#
# A second run reuses what the first made (reply cache, finished shards, snapshots, the
# tag, the export, the trained adapter) and says so. Knobs (environment):
#   BIN                          the virtualenv's bin directory [.venv/bin]
#   PARALLELNER_HOME             catalog, warehouse, caches, reports [.parallelner]
#   PARALLELNER_DEMO_OUT         exports, instruction data, models [out/demo]
#   PARALLELNER_DEMO_LIMIT       sentences per local-model run [4]
#   PARALLELNER_DEMO_TAG         the dataset tag [demo-v1]
#   PARALLELNER_DEMO_LOCAL_MODEL 0 skips the two local-model runs (the test of this script
#                                does, to stay short; everything else runs) [1]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
export PARALLELNER_HOME="${PARALLELNER_HOME:-.parallelner}"
OUT="${PARALLELNER_DEMO_OUT:-out/demo}"
LIMIT="${PARALLELNER_DEMO_LIMIT:-4}"
TAG="${PARALLELNER_DEMO_TAG:-demo-v1}"
LOCAL_MODEL="${PARALLELNER_DEMO_LOCAL_MODEL:-1}"
LS_URL="${PARALLELNER_LABEL_STUDIO_URL:-http://127.0.0.1:8080}"
# models and datasets come from disk only: a missing file is an error, never a download
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" HF_DATASETS_OFFLINE="${HF_DATASETS_OFFLINE:-1}"
# the training libraries' progress bars and deprecation notes are not what the demo shows
export TOKENIZERS_PARALLELISM=false HF_DATASETS_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
PN="$BIN/parallelner"
PY="$BIN/python"
START=$SECONDS
REUSED=()
STEP=0
mkdir -p "$OUT"

step() {  # step "who" "what it shows"
  STEP=$((STEP + 1))
  STEP_START=$SECONDS
  printf '\n\033[1m== %d. [%s] %s\033[0m\n' "$STEP" "$1" "$2"
}
show() {  # print a command as a user types it, then run it
  printf '$ %s\n' "$(printf '%s ' "$@" | sed "s#^$BIN/##")"
  "$@"
}
done_in() { printf '   (%d s)\n' $((SECONDS - STEP_START)); }

# --- data engineer ---------------------------------------------------------------------
step "data engineer" "inspect: check a corpus before running it (sentences, labels, quarantine)"
show "$PN" inspect examples/wikineural-en-sample.conllu
done_in

if [ "$LOCAL_MODEL" != 0 ]; then
  if compgen -G "$OUT/runs/run-*.parquet" >/dev/null; then
    REUSED+=("the local-model runs' finished shards and reply cache")
  fi
  step "data engineer" "run en->zh with the embedded local model: translate with the mentions, project, back-translate, check, commit a snapshot ($LIMIT sentences)"
  show "$PN" run examples/wikineural-en-sample.conllu --to zh --limit "$LIMIT" --output "$OUT/runs"
  done_in

  step "data engineer" "the same for zh->en (CLUENER Chinese), the other direction of the paper"
  show "$PN" run examples/cluener-zh-sample.jsonl --format cluener --to en --limit "$LIMIT" --output "$OUT/runs"
  done_in

  step "data engineer" "what the quality reports say, in plain words"
  "$PY" scripts/demo_steps.py outcome "$OUT/runs" "$PARALLELNER_HOME"
  done_in
fi

step "data engineer" "pairs that can be accepted: human translations (Europarl en-de), spans projected by string matching, the same automatic checks, committed as a snapshot"
show "$PN" project data/projection-dev/europarl-en-de.jsonl -o "$OUT/projected-en-de.jsonl" \
  --llm none --commit --dataset europarl
done_in

# --- researcher ------------------------------------------------------------------------
step "researcher" "tag the latest snapshot under an immutable name"
if "$PN" snapshot show "$TAG" >/dev/null 2>&1; then
  echo "tag $TAG exists (made by an earlier make demo): reusing it; tags are never moved"
  REUSED+=("tag $TAG")
  show "$PN" snapshot show "$TAG"
else
  show "$PN" snapshot tag "$TAG"
fi
done_in

step "researcher" "export the accepted pairs as a Hugging Face dataset (splits by source sentence, dataset card, checksums)"
if [ -f "$OUT/export/SHA256SUMS" ]; then
  echo "$OUT/export exists (an earlier make demo exported $TAG): checking it instead"
  REUSED+=("export")
  show "$PN" snapshot verify "$OUT/export"
else
  show "$PN" snapshot export "$TAG" "$OUT/export" --status accepted,reviewed_accepted
fi
done_in

step "researcher" "load it as any Hugging Face dataset"
printf '>>> from datasets import load_dataset\n>>> ds = load_dataset("%s")\n' "$OUT/export"
"$PY" scripts/demo_steps.py load "$OUT/export"
done_in

# the tiny CPU config, its model and output directories under $OUT
sed 's#\.\./\.\./runs/#./#' training/configs/tiny-cpu.yaml >"$OUT/tiny-cpu.yaml"

step "researcher" "build KnowCoder-style instruction data from the tag's accepted pairs (NER on both sides, alignment both ways)"
if [ -f "$OUT/train-data/manifest.json" ]; then
  echo "$OUT/train-data exists (built from $TAG by an earlier make demo): reusing it"
  REUSED+=("instruction data")
else
  show "$PN" train build --snapshot "$TAG" -o "$OUT/train-data" -c "$OUT/tiny-cpu.yaml"
fi
"$PY" scripts/demo_steps.py example "$OUT/train-data"
done_in

step "researcher" "train a tiny random model (no download) a few LoRA steps on the CPU, then evaluate it"
if [ -f "$OUT/tiny-sft/train_report.json" ] && [ -f "$OUT/eval/eval_report.json" ]; then
  echo "$OUT/tiny-sft and $OUT/eval exist (an earlier make demo trained and evaluated): reusing them"
  REUSED+=("tiny model, adapter and evaluation")
else
  rm -rf "$OUT/tiny-model" "$OUT/tiny-sft" "$OUT/eval"
  show "$PN" train tiny-model --data "$OUT/train-data" -o "$OUT/tiny-model"
  show "$PN" train run -c "$OUT/tiny-cpu.yaml" --data "$OUT/train-data" --max-steps 20
  show "$PN" train eval -c "$OUT/tiny-cpu.yaml" --adapter "$OUT/tiny-sft/adapter" \
    --data "$OUT/train-data" -o "$OUT/eval" --limit 16
fi
"$PY" scripts/demo_steps.py trained "$OUT/tiny-sft" "$OUT/eval"
done_in

# --- annotator -------------------------------------------------------------------------
step "annotator" "the pairs in review go to Label Studio as tasks with the projected spans pre-filled"
if "$PY" scripts/demo_steps.py label-studio-up "$LS_URL" && [ -n "${PARALLELNER_LABEL_STUDIO_API_KEY:-}" ]; then
  show "$PN" review push
else
  echo "no Label Studio answers at $LS_URL (or PARALLELNER_LABEL_STUDIO_API_KEY is unset):"
  echo "showing what \`parallelner review push\` would send; the review screen is docs/img/labeling-interface.png"
  show "$PN" review push --dry-run
fi
done_in

# --- closing screen ---------------------------------------------------------------------
printf '\n\033[1m== done\033[0m\n'
"$PY" scripts/demo_steps.py closing "$OUT" "$PARALLELNER_HOME" "$TAG" $((SECONDS - START)) "${REUSED[@]}"
