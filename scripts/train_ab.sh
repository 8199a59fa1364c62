#!/usr/bin/env bash
# The 3-way A/B of trainer/configs/ab.toml: MoE, MoTE task experts and dense, in turn, each resumable (rerun this
# script after an interruption: finished stages are kept, a stage continues from its last checkpoint). The first
# arm filters and mines with the dense base; the others reuse exactly those sets. Then expert averaging of the
# MoTE arm, its evaluation, the paired tests and the model cards. Logs: data/logs/ab-*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CFG=trainer/configs/ab.toml
RUNS=${AB_RUNS:-data/runs}
mkdir -p data/logs

arm() {  # arm NAME overrides...
  local name=$1; shift
  local out="$RUNS/ab-$name"
  if [ "$name" != moe ]; then  # same filtered + mined data as the first arm
    mkdir -p "$out"
    for step in filtered mined; do
      [ -d "$out/$step" ] || cp -r "$RUNS/ab-moe/$step" "$out/$step"
    done
  fi
  if [ -f "$out/result.json" ]; then echo "ab-$name: done"; return; fi
  echo "ab-$name: training ($(date -u +%H:%M))"
  "$PY" -m trainer recipe --config "$CFG" --out_dir="$out" --quiet --resume "$@" >>"data/logs/ab-$name.log" 2>&1
}

arm moe
arm task --experts=task --model_id=moesearch-minilm-task --eval.baseline=
arm dense --num_experts=1 --top_k=1 --model_id=moesearch-minilm-dense --eval.baseline=

# Expert averaging (MoTE EA): the fourth row, evaluated like the others.
EA="$RUNS/ab-task-ea"
if [ ! -f "$EA/eval.json" ]; then
  mkdir -p "$EA"
  "$PY" -m embedder average "$RUNS/ab-task/finetune/model" --out "$EA/model" --model-id moesearch-minilm-task-ea
  "$PY" -m trainer eval --model "$EA/model" --config "$CFG" --quiet --json "$EA/eval.json" \
    --beir $("$PY" -c "from trainer.config import load_config; print(' '.join(load_config('$CFG').eval.beir))") \
    >>data/logs/ab-task-ea.log 2>&1
fi
for b in task dense task-ea; do
  "$PY" -m trainer compare "$RUNS/ab-moe" "$RUNS/ab-$b" --json "$RUNS/ab-moe-vs-$b.json" || true
done
"$PY" -m trainer compare "$RUNS/ab-task" "$RUNS/ab-dense" --json "$RUNS/ab-task-vs-dense.json" || true
"$PY" -m trainer card "$RUNS/ab-moe" --ab "$RUNS/ab-task" "$RUNS/ab-dense" "$RUNS/ab-task-ea" --out "$RUNS/ab-card.md"
echo "A/B finished: $RUNS/ab-card.md"
