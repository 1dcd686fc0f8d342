#!/usr/bin/env bash
# Pseudo-RIS on SynthRef (docs/pseudo_ris.md): pseudo-labels → a segmenter trained on them → val and
# testB, for L2L's Table 2 layout (ROW full, all training images, every seed; ROW semi1, that model
# fine-tuned on the 1 % label split, the paper's semi-supervised protocol) and Pseudo-RIS's
# Tables 5 and 6 (rows naive dcs filter full800 gt800: the first 800 images, the masks of `full`
# reused so that only captions and filter differ; gt800 captions every ground-truth mask); the direct
# zero-shot baseline; L2L at 0.3 % and 1 %, supervised at 1 % and the 100 % ceiling copied from their
# grids when they were run. Resumable: generations, runs and evaluations already there are skipped.
# More rows (not in the default ROWS; issue 34): wsum800 (Table 14: weighted-sum aggregation, the masks
# of `full`), uos800 and cos800 (Table 12: uniqueness or correctness alone, refiltered from `full`'s
# scored captions at the threshold that keeps as many captions as DoS ≥ 1.3), tau1.0 … tau2.0 (Fig. 9:
# the filter threshold, refiltered from `full`).
# The target model (issue 34): TARGET=lavt (the default: the SynthRef student, configs/synthref_supervised.yaml)
# or TARGET=cris (CRIS on the dual encoder's towers, configs/synthref_cris.yaml; runs and results named cris_ROW).
# Usage: bash scripts/pseudo_ris_table.sh [SEEDS...]   (default: 22)   ROWS="full naive …" picks rows.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
DATA=${DATA:-runs/data/synthref}
WORK=${WORK:-runs/pseudo_ris}
OUT=${OUT:-docs/results/pseudo_ris}
ROWS=${ROWS:-"full semi1 naive dcs filter full800 gt800"}
SEEDS=${*:-22}
TARGET=${TARGET:-lavt}
case "$TARGET" in
  lavt) TRAIN_CONFIG=configs/synthref_supervised.yaml; NAME="" ;;
  cris) TRAIN_CONFIG=configs/synthref_cris.yaml; NAME="cris_" ;;
  *) echo "TARGET must be lavt or cris, got $TARGET" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
generation() {  # row -> "folder|extra generate arguments"
  case "$1" in
    full) echo "$WORK/zs_full|" ;;
    full800) echo "$WORK/t5_full800|--max-images 800 --records-from $WORK/zs_full" ;;
    dcs) echo "$WORK/t5_dcs|--max-images 800 --records-from $WORK/zs_full filter.enabled=false" ;;
    filter) echo "$WORK/t5_filter|--max-images 800 --masks-from $WORK/zs_full captions.distinctive=false" ;;
    naive) echo "$WORK/t5_naive|--max-images 800 --records-from $WORK/t5_filter captions.distinctive=false filter.enabled=false" ;;
    gt800) echo "$WORK/t6_gt800|--max-images 800 masks.source=gt" ;;
    wsum800) echo "$WORK/t14_wsum800|--max-images 800 --masks-from $WORK/zs_full captions.aggregation=weighted_sum" ;;
    uos800) echo "$WORK/t12_uos800|--max-images 800 --records-from $WORK/zs_full filter.score=uos filter.tau=$(matched uos)" ;;
    cos800) echo "$WORK/t12_cos800|--max-images 800 --records-from $WORK/zs_full filter.score=cos filter.tau=$(matched cos)" ;;
    tau*) echo "$WORK/f9_${1}|--max-images 800 --records-from $WORK/zs_full filter.tau=${1#tau}" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
matched() {  # score -> the threshold that keeps as many of full800's captions as DoS >= 1.3
  [ -f "$WORK/t5_full800/quality.json" ] || l2l pseudo-ris quality "$WORK/t5_full800" --data "$DATA" \
    --out "$WORK/t5_full800/quality.json" > /dev/null
  python -c "import json,sys; print(json.load(open(sys.argv[1]))['counts']['thresholds_matching_dos'][sys.argv[2]])" \
    "$WORK/t5_full800/quality.json" "$1"
}
# generations in dependency order (the 800-image rows reuse the masks, or the scored captions, of
# `full` and `filter`: only what the row changes is computed again)
extra=""
for row in $ROWS; do case "$row" in wsum800 | uos800 | cos800 | tau*) extra="$extra $row" ;; esac; done
for row in full full800 dcs filter naive gt800 $extra; do
  needed=" $ROWS full "
  case "$extra" in *" uos800"* | *" cos800"*) needed="$needed full800 " ;; esac  # their thresholds come from it
  case " $ROWS " in *" naive "*) needed="$needed filter " ;; esac  # naive refilters filter's captions
  case "$needed" in *" $row "*) ;; *) continue ;; esac
  spec=$(generation "$row")
  folder=${spec%%|*}
  # shellcheck disable=SC2086
  [ -f "$folder/meta.json" ] || l2l pseudo-ris generate --data "$DATA" --out "$folder" --quiet ${spec#*|}
done
train_eval() {  # row seed
  local spec run
  spec=$(generation "$1")
  run="$WORK/train_${NAME}${1}_s${2}"
  [ -f "$run/eval_val.json" ] || l2l train --config "$TRAIN_CONFIG" --out "$run" \
    data.root="${spec%%|*}" data.label_fraction=100% seed="$2"
  for split in val testB; do
    [ -f "$OUT/${NAME}${1}_s${2}_${split}.json" ] || l2l eval --ckpt "$run" --split "$split" \
      --out "$OUT/${NAME}${1}_s${2}_${split}.json"
  done
}
semi_eval() {  # seed: the paper's semi-supervised protocol, the Pseudo-RIS model fine-tuned on the 1 % split
  if [ "$TARGET" != lavt ]; then echo "row semi1: built for TARGET=lavt only (its SESM config), skipped" >&2; return; fi
  local run="$WORK/train_semi1_s$1"
  [ -f "$run/eval_val.json" ] || l2l train --config configs/synthref_semi.yaml --method supervised --out "$run" \
    data.root="$DATA" data.label_fraction=1% init_from="$WORK/train_full_s$1" seed="$1"
  for split in val testB; do
    [ -f "$OUT/semi1_s${1}_${split}.json" ] || l2l eval --ckpt "$run" --split "$split" --out "$OUT/semi1_s${1}_${split}.json"
  done
}
# the Table 2 rows at every seed first, then Tables 5 / 6 at the first seed
case " $ROWS " in *" full "*) for seed in $SEEDS; do train_eval full "$seed"; done ;; esac
case " $ROWS " in *" semi1 "*) for seed in $SEEDS; do semi_eval "$seed"; done ;; esac
for row in $ROWS; do
  case "$row" in full | semi1) ;; *) train_eval "$row" "${SEEDS%% *}" ;; esac
done
for split in val testB; do
  [ -f "$OUT/zero_shot_baseline_${split}.json" ] || l2l pseudo-ris baseline --data "$DATA" --split "$split" \
    --out "$OUT/zero_shot_baseline_${split}.json"
  for seed in 22 23 24; do
    # L2L at 0.3 % and 1 % with the learned prior (configs/synthref_table1_standin.yaml), supervised
    # at 1 % and 100 % (configs/synthref_table1.yaml): copied when their grids were run
    for pair in synthref_table1_standin/synthref/l2l_0.3:l2l_03pct synthref_table1_standin/synthref/l2l_1:l2l_1pct \
                synthref_table1/synthref/sup_1:sup_1pct synthref_table1/synthref/sup_full_100:ceiling; do
      src="runs/${pair%%:*}_s${seed}"
      f="$src/eval_${split}_none_original.json"
      if [ "$split" = val ] && [ ! -f "$f" ]; then f="$src/eval_val.json"; fi
      if [ -f "$f" ]; then cp "$f" "$OUT/${pair#*:}_s${seed}_${split}.json"; fi
    done
  done
done
for split in val testB; do
  l2l pseudo-ris table --results "$OUT" --split "$split" --out "$OUT/table_${split}.md" > /dev/null
done
cat "$OUT/table_val.md"
