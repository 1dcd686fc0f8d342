#!/usr/bin/env bash
# PPT on SynthRef: the full model and the paper's Table 3 rows (docs/ppt.md), each trained from the
# same prepared pseudo-labels and evaluated on val. Resumable: finished runs and evaluations are
# skipped. Usage: bash scripts/ppt_table3.sh [SEEDS...]   (default: 0)
# ROWS picks rows; EXTRA adds overrides to every run (e.g. EXTRA=threads=1 beside other work);
# SPLITS the evaluation splits (default val; e.g. SPLITS="val testA testB").
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
DATA=${DATA:-runs/data/synthref}
LABELS=${LABELS:-runs/ppt/labels}
RUNS=${RUNS:-runs/ppt}
OUT=${OUT:-docs/results/ppt}
ROWS=${ROWS:-"full sem ris no_cl no_dref no_dsem no_img pt_no_img"}
SEEDS=${*:-0}
EXTRA=${EXTRA:-}
SPLITS=${SPLITS:-val}
mkdir -p "$OUT"
if [ ! -f "$LABELS/summary.json" ]; then
  l2l ppt prepare --data "$DATA" --out "$LABELS" --config configs/synthref_ppt.yaml --max-images 800 --quiet
fi
overrides() {
  case "$1" in
    full) echo "" ;;
    sem) echo "curriculum.last_stage=1" ;;                  # Table 3 row 3
    ris) echo "curriculum.last_stage=2" ;;                  # row 4
    no_cl) echo "curriculum.enabled=false" ;;               # row 6
    no_dref) echo "curriculum.use_d_ref=false" ;;           # row 7
    no_dsem) echo "curriculum.use_d_sem=false" ;;           # row 8
    no_img) echo "curriculum.use_d_sem=false curriculum.use_d_ref=false" ;;  # row 9
    pt_no_img) echo "curriculum.enabled=false curriculum.use_d_sem=false curriculum.use_d_ref=false" ;;  # row 2
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
for seed in $SEEDS; do
  for row in $ROWS; do
    run="$RUNS/${row}_s${seed}"
    # shellcheck disable=SC2046
    [ -f "$run/done.json" ] || l2l ppt train --data "$DATA" --labels "$LABELS" --out "$run" \
      --config configs/synthref_ppt.yaml --quiet seed="$seed" $(overrides "$row") $EXTRA
    for split in $SPLITS; do
      [ -f "$OUT/${row}_s${seed}_${split}.json" ] || l2l ppt eval --data "$DATA" --run "$run" --split "$split" \
        --out "$OUT/${row}_s${seed}_${split}.json" --quiet
    done
    cp "$run/done.json" "$OUT/${row}_s${seed}_train.json"
  done
done
for split in $SPLITS; do
  for kind in naive proposals; do
    [ -f "$OUT/${kind}_${split}.json" ] || l2l ppt baseline --kind "$kind" --data "$DATA" --split "$split" \
      --out "$OUT/${kind}_${split}.json" --quiet
  done
done
