#!/usr/bin/env bash
# The SynthRef semi-supervised table (docs/results.md): methods × label fractions × seeds, plus the
# Table 3 ablations and the Fig. 5 threshold sweep at 5 %. Two runs at a time, one thread each.
# Resumable: a finished run (eval files present) is skipped, an interrupted one resumes.
# Usage: bash scripts/synthref_table.sh [main|ablations|all]   (after data + priors, see configs/synthref_l2l.yaml)
#        ALL_ABLATIONS=1 adds τ_fg = 0.80 and the other three reward-term ablations (not run for docs/results.md)
set -euo pipefail
cd "$(dirname "$0")/.."
L2L=${L2L:-.venv/bin/l2l}
OUT=${OUT:-runs/table}
DATA=${DATA:-runs/data/synthref}
PRI=${PRI:-runs/data/synthref_priors}
export L2L_NO_PROGRESS=1 OMP_NUM_THREADS=1
mkdir -p "$OUT"
# eval-time priors (only for the extra "guidance prior" column of guided models)
for s in val testB; do
  [ -f "${PRI}_$s/store.json" ] && [ "$(wc -l < "${PRI}_$s/manifest.rank0.jsonl")" -gt 0 ] || \
    $L2L priors generate --data "$DATA" --split "$s" --subset all --out "${PRI}_$s" >/dev/null
done

jobs=()
add() { jobs+=("$*"); }   # name config method extra-overrides...
main() {
  for seed in 22 23 24; do
    for f in 5 1; do
      add "sup_${f}_s$seed configs/synthref_semi.yaml supervised data.label_fraction=$f% seed=$seed"
      add "fixmatch_${f}_s$seed configs/synthref_semi.yaml fixmatch data.label_fraction=$f% seed=$seed"
      add "priorfusion_${f}_s$seed configs/synthref_semi.yaml prior-fusion data.label_fraction=$f% seed=$seed"
      add "static070_${f}_s$seed configs/synthref_l2l.yaml static-threshold data.label_fraction=$f% seed=$seed"
      add "l2l_${f}_s$seed configs/synthref_l2l.yaml l2l data.label_fraction=$f% seed=$seed"
    done
  done
}
ablations() {
  local c="data.label_fraction=5% seed=22"
  add "agreement_5_s22 configs/synthref_semi.yaml agreement-filter $c"
  add "catm_5_s22 configs/synthref_semi.yaml catm $c"
  add "static090_5_s22 configs/synthref_l2l.yaml static-threshold $c semi.tau_fg=0.90"
  add "abl_nospm_5_s22 configs/synthref_l2l.yaml l2l $c semi.source=weak"
  add "abl_nosesm_5_s22 configs/synthref_l2l.yaml l2l $c model.sesm.enabled=false"
  for seed in 22 23 24; do
    add "abl_sgnone_5_s$seed configs/synthref_l2l.yaml l2l data.label_fraction=5% seed=$seed semi.strong_guidance=none"
  done
  add "static060_5_s22 configs/synthref_l2l.yaml static-threshold $c semi.tau_fg=0.60"
  add "abl_nosep_5_s22 configs/synthref_l2l.yaml l2l $c semi.rple.terms=[con,cov,stab]"
  [ -n "${ALL_ABLATIONS:-}" ] || return 0
  add "static080_5_s22 configs/synthref_l2l.yaml static-threshold $c semi.tau_fg=0.80"
  for term in con cov stab; do
    keep=$(echo sep con cov stab | tr ' ' '\n' | grep -v "^$term$" | paste -sd, -)
    add "abl_no${term}_5_s22 configs/synthref_l2l.yaml l2l $c semi.rple.terms=[$keep]"
  done
}
case "${1:-all}" in
  main) main ;;
  ablations) ablations ;;
  all) main; ablations ;;
  *) echo "usage: $0 [main|ablations|all]"; exit 2 ;;
esac

run_one() {
  set -euo pipefail
  read -r name config method extra <<<"$1"
  local run="$OUT/$name"
  if [ -f "$run/eval_testB_none_original.json" ]; then echo "done  $name"; return 0; fi
  echo "start $name ($(date +%H:%M:%S))"
  # shellcheck disable=SC2086
  $L2L train --config "$config" --method "$method" --out "$run" "data.root=$DATA" "semi.priors=$PRI" $extra \
    > "$run.log" 2>&1 || { echo "FAILED $name (see $run.log)"; return 1; }
  if grep -q "enabled: true" <(sed -n '/^  sesm:/,/^  [a-z]/p' "$run/config.yaml"); then
    for s in val testB; do $L2L eval --ckpt "$run" --split $s --guidance prior --priors "${PRI}_$s" >> "$run.log" 2>&1; done
  fi
  $L2L eval --ckpt "$run" --split testB >> "$run.log" 2>&1
  echo "end   $name ($(date +%H:%M:%S)): $(grep -h 'val oIoU' "$run.log" | tail -1)"
}
export -f run_one
export L2L OUT DATA PRI
printf '%s\n' "${jobs[@]}" | xargs -P "${JOBS:-2}" -I{} bash -c 'run_one "$@"' _ {}
