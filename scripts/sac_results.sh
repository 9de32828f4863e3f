#!/usr/bin/env bash
# Regenerate the SAC-vs-PID results of docs/results.md (issue 4), end to end.
#
#   scripts/sac_results.sh                 # everything: train, export, evaluate, compare
#   SKIP_TRAIN=1 scripts/sac_results.sh    # from an existing run in $RUN (or a committed policy)
#
# Variables (defaults are the values behind docs/results.md):
#   SEED=0 STEPS=1200000 TWIN=reduced TRIALS=250 RUN=runs/train/sac-reduced-s0
#   POLICY=models/sac-reduced OUT=runs/results
# Training is resumable: re-running the script continues $RUN from its latest checkpoint.
# Every output folder records the command, commit and versions (summary.json / run.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exo=${EXO:-.venv/bin/exo}
SEED=${SEED:-0}
STEPS=${STEPS:-1200000}
TWIN=${TWIN:-reduced}
TRIALS=${TRIALS:-250}
RUN=${RUN:-runs/train/sac-$TWIN-s$SEED}
POLICY=${POLICY:-models/sac-$TWIN}
OUT=${OUT:-runs/results}
other=$([ "$TWIN" = reduced ] && echo full || echo reduced)

if [ -z "${SKIP_TRAIN:-}" ]; then
  resume=(); [ -f "$RUN/run.json" ] && resume=(--resume)
  "$exo" train --algo sac --twin "$TWIN" --steps "$STEPS" --seed "$SEED" --out "$RUN" "${resume[@]}"
  "$exo" export-policy "$RUN" --out "$POLICY" --which best
fi

# The paper's protocol on TRIALS generated subjects per level (subject seeds from --seed 0).
for twin in "$TWIN" "$other"; do
  "$exo" eval --controller pid --twin "$twin" --trials "$TRIALS" --out "$OUT/pid-$twin"
  "$exo" eval --controller sac --policy "$POLICY" --twin "$twin" --trials "$TRIALS" --out "$OUT/sac-$TWIN-on-$twin"
done
# In-domain comparison (the paper's table) and sim-to-sim transfer (policy trained on $TWIN, run on $other).
"$exo" compare "$OUT/pid-$TWIN" "$OUT/sac-$TWIN-on-$TWIN" --out "$OUT/compare-$TWIN"
"$exo" compare "$OUT/pid-$other" "$OUT/sac-$TWIN-on-$other" --out "$OUT/compare-$TWIN-on-$other"
"$exo" compare "$OUT/sac-$TWIN-on-$TWIN" "$OUT/sac-$TWIN-on-$other" --out "$OUT/transfer-$TWIN-to-$other"
echo "results in $OUT (compare-*/compare.md, compare.png)"
