#!/usr/bin/env bash
# Pseudo-RIS on SynthRef (docs/pseudo_ris.md): pseudo-labels → a segmenter trained on them → val and
# testB, for L2L's Table 2 layout (ROW full, all training images, every seed) and Pseudo-RIS's
# Tables 5 and 6 (rows naive dcs filter full800 gt800: the first 800 images, the masks of `full`
# reused so that only captions and filter differ); the direct zero-shot baseline; L2L at 1 % and
# the 100 % ceiling copied from their grids when they were run. Resumable: generations, runs and
# evaluations already there are skipped.
# Usage: bash scripts/pseudo_ris_table.sh [SEEDS...]   (default: 22)   ROWS="full naive …" picks rows.
set -euo pipefail
cd "$(dirname "$0")/.."
source .venv/bin/activate
DATA=${DATA:-runs/data/synthref}
WORK=${WORK:-runs/pseudo_ris}
OUT=${OUT:-docs/results/pseudo_ris}
ROWS=${ROWS:-"full naive dcs filter full800 gt800"}
SEEDS=${*:-22}
mkdir -p "$OUT"
generation() {  # row -> "folder|extra generate arguments"
  case "$1" in
    full) echo "$WORK/zs_full|" ;;
    full800) echo "$WORK/t5_full800|--max-images 800 --records-from $WORK/zs_full" ;;
    dcs) echo "$WORK/t5_dcs|--max-images 800 --records-from $WORK/zs_full filter.enabled=false" ;;
    filter) echo "$WORK/t5_filter|--max-images 800 --masks-from $WORK/zs_full captions.distinctive=false" ;;
    naive) echo "$WORK/t5_naive|--max-images 800 --records-from $WORK/t5_filter captions.distinctive=false filter.enabled=false" ;;
    gt800) echo "$WORK/t6_gt800|--max-images 800 masks.source=gt" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
# generations in dependency order (the 800-image rows reuse the masks, or the scored captions, of
# `full` and `filter`: only what the row changes is computed again)
for row in full full800 dcs filter naive gt800; do
  case " $ROWS " in *" $row "*) ;; *) [ "$row" = full ] || [ "$row" = filter ] || continue ;; esac
  spec=$(generation "$row")
  folder=${spec%%|*}
  # shellcheck disable=SC2086
  [ -f "$folder/meta.json" ] || l2l pseudo-ris generate --data "$DATA" --out "$folder" --quiet ${spec#*|}
done
for seed in $SEEDS; do
  for row in $ROWS; do
    [ "$row" = full ] || [ "$seed" = "${SEEDS%% *}" ] || continue  # Tables 5 / 6: the first seed only
    spec=$(generation "$row")
    run="$WORK/train_${row}_s${seed}"
    [ -f "$run/best/model.safetensors" ] && [ -f "$run/eval_val.json" ] || l2l train \
      --config configs/synthref_supervised.yaml --out "$run" data.root="${spec%%|*}" data.label_fraction=100% seed="$seed"
    for split in val testB; do
      [ -f "$OUT/${row}_s${seed}_${split}.json" ] || l2l eval --ckpt "$run" --split "$split" \
        --out "$OUT/${row}_s${seed}_${split}.json"
    done
  done
done
for split in val testB; do
  [ -f "$OUT/zero_shot_baseline_${split}.json" ] || l2l pseudo-ris baseline --data "$DATA" --split "$split" \
    --out "$OUT/zero_shot_baseline_${split}.json"
  for seed in 22 23 24; do  # L2L at 1 % with the learned prior (configs/synthref_table1_standin.yaml)
    src="runs/synthref_table1_standin/synthref/l2l_1_s${seed}"
    f="$src/eval_${split}_none_original.json"
    if [ "$split" = val ] && [ ! -f "$f" ]; then f="$src/eval_val.json"; fi
    if [ -f "$f" ]; then cp "$f" "$OUT/l2l_1pct_s${seed}_${split}.json"; fi
  done
  for seed in 22 23 24; do  # the 100 % ceiling (configs/synthref_table1.yaml, section ceiling)
    src="runs/synthref_table1/synthref/sup_full_100_s${seed}"
    f="$src/eval_${split}_none_original.json"
    if [ "$split" = val ] && [ ! -f "$f" ]; then f="$src/eval_val.json"; fi
    if [ -f "$f" ]; then cp "$f" "$OUT/ceiling_s${seed}_${split}.json"; fi
  done
done
for split in val testB; do
  l2l pseudo-ris table --results "$OUT" --split "$split" --out "$OUT/table_${split}.md" > /dev/null
done
cat "$OUT/table_val.md"
