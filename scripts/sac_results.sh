#!/usr/bin/env bash
# Regenerate the SAC-vs-PID results of docs/results.md, end to end.
#
#   scripts/sac_results.sh                          # the paper's agent: train, select, export, evaluate, compare
#   VARIANT=residual-peak scripts/sac_results.sh    # residual policy on the PID + a per-step peak band (docs/results.md)
#   VARIANT=residual-runmax scripts/sac_results.sh  # residual policy on the PID + the running-peak term (docs/results.md)
#   VARIANT=residual-capped scripts/sac_results.sh  # residual policy on the PID capped at 85 N m + the running-peak term above 85 N m
#   VARIANT=residual-capped-strong scripts/sac_results.sh  # residual-capped with a 10 (not 3) per N m peak charge
#   VARIANT=residual-limited scripts/sac_results.sh # residual policy on the PID capped at 85 N m, combined torque hard-capped at 85 N m
#   SKIP_TRAIN=1 scripts/sac_results.sh             # from an existing run in $RUN (or a committed policy)
#   ONLY_TRAIN=1 scripts/sac_results.sh             # train (or resume) $RUN and stop there
#
# Variables (defaults are the values behind docs/results.md):
#   VARIANT=paper SEED=0 STEPS=1200000 TWIN=reduced TRIALS=250 SELECT_TRIALS=10 WHICH=selected
#   RUN=runs/train/sac-[<variant>-]<twin>-s<seed> POLICY=models/sac-[<variant>-]<twin> OUT=runs/results/<variant>
# Training is resumable: re-running the script continues $RUN from its latest checkpoint.
# Checkpoints are ranked by their shortfall from the paper's peak and RMS torque margins vs the PID
# and from a final error <= 2 deg, on subjects of seed 2000 (exo select-checkpoint);
# WHICH=best exports the best-return model instead. Every output folder records the command,
# commit and versions (summary.json / run.json / selection.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exo=${EXO:-.venv/bin/exo}
VARIANT=${VARIANT:-paper}
SEED=${SEED:-0}
STEPS=${STEPS:-1200000}
TWIN=${TWIN:-reduced}
TRIALS=${TRIALS:-250}
SELECT_TRIALS=${SELECT_TRIALS:-10}
WHICH=${WHICH:-selected}
# the PID of config/controllers.yaml with its torque capped at 85 N m (base of the residual-capped/-limited variants)
capped_pid='residual_params={kp: 344.04, ki: 4062.43, kd: 7.2839, torque_limit_nm: 85.0, dt: 0.01, anti_windup: clamp, derivative_filter_s: 0.0, derivative_source: difference}'
case "$VARIANT" in
  paper) name=sac-$TWIN; settings=() ;;
  residual-peak)
    # the policy corrects the PID (+-50 N m), and the reward adds a bounded penalty on torques above 70 N m
    name=sac-residual-peak-$TWIN
    settings=(--set residual_controller=pid
              --set 'env_overrides={reward__weights: {pose: 5.0, interaction: 1.0, smoothness: 0.01, acceleration: 0.001, range: 10.0, peak: 4.0}, reward__unsafe_stop_penalty_per_step: 15.0}') ;;
  residual-runmax)
    # the policy corrects the PID (+-50 N m), and the reward charges 3 per N m of the episode's peak above 60 N m
    name=sac-residual-runmax-$TWIN
    settings=(--set residual_controller=pid --set checkpoint_every_steps=25000
              --set 'env_overrides={reward__weights: {pose: 5.0, interaction: 1.0, smoothness: 0.01, acceleration: 0.001, range: 10.0, peak: 3.0}, reward__peak_form: running_max, reward__peak_above_nm: 60.0, reward__peak_span_nm: 1.0}') ;;
  residual-capped)
    # the policy corrects a PID whose own torque is capped at 85 N m (the cap that gives the paper's peak margins,
    # docs/results.md section 2) by +-50 N m; the reward charges 3 per N m of the episode's peak above 85 N m, so
    # torque beyond the cap (holding a stiff knee) is spent only where it pays in tracking
    name=sac-residual-capped-$TWIN
    settings=(--set residual_controller=pid --set checkpoint_every_steps=25000
              --set "$capped_pid"
              --set 'env_overrides={reward__weights: {pose: 5.0, interaction: 1.0, smoothness: 0.01, acceleration: 0.001, range: 10.0, peak: 3.0}, reward__peak_form: running_max, reward__peak_above_nm: 85.0, reward__peak_span_nm: 1.0}') ;;
  residual-capped-strong)
    # residual-capped with a charge of 10 (not 3) per N m of the episode's interaction peak above 85 N m: at 3 the
    # policy bought the PID's peaks back at levels 1-3 for tracking (docs/results.md section 4.2)
    name=sac-residual-capped-strong-$TWIN
    settings=(--set residual_controller=pid --set checkpoint_every_steps=25000
              --set "$capped_pid"
              --set 'env_overrides={reward__weights: {pose: 5.0, interaction: 1.0, smoothness: 0.01, acceleration: 0.001, range: 10.0, peak: 10.0}, reward__peak_form: running_max, reward__peak_above_nm: 85.0, reward__peak_span_nm: 1.0}') ;;
  residual-limited)
    # as residual-capped, but base + correction is clipped at 85 N m (residual_limit 0.85): the peak margins of the
    # capped PID hold by construction, and the policy can only win on tracking and RMS; the paper's reward
    name=sac-residual-limited-$TWIN
    settings=(--set residual_controller=pid --set checkpoint_every_steps=25000 --set residual_limit=0.85
              --set "$capped_pid") ;;
  *) echo "unknown VARIANT=$VARIANT (paper, residual-peak, residual-runmax, residual-capped, residual-capped-strong, residual-limited)" >&2; exit 2 ;;
esac
RUN=${RUN:-runs/train/$name-s$SEED}
POLICY=${POLICY:-models/$name}
OUT=${OUT:-runs/results/$VARIANT}
other=$([ "$TWIN" = reduced ] && echo full || echo reduced)

if [ -z "${SKIP_TRAIN:-}" ]; then
  if [ -f "$RUN/run.json" ]; then
    "$exo" train --algo sac --twin "$TWIN" --steps "$STEPS" --seed "$SEED" --out "$RUN" --resume
  else
    # the learner settings the committed policies were trained with (config/sac.yaml now defaults to the faster
    # SBX learner, batch 128, 8 envs); LEARNER=default trains with config/sac.yaml's values instead
    learner=()
    [ "${LEARNER:-committed}" = committed ] && learner=(--set learner=sb3 --set batch_size=512 --set n_envs=2 --set train_freq=64)
    "$exo" train --algo sac --twin "$TWIN" --steps "$STEPS" --seed "$SEED" --out "$RUN" --set keep_checkpoints=40 \
      "${learner[@]}" "${settings[@]}"
  fi
fi
[ -n "${ONLY_TRAIN:-}" ] && exit 0
if [ -d "$RUN/checkpoints" ]; then
  [ "$WHICH" = selected ] && "$exo" select-checkpoint "$RUN" --trials "$SELECT_TRIALS"
  "$exo" export-policy "$RUN" --out "$POLICY" --which "$WHICH"
fi

# The paper's protocol on TRIALS generated subjects per level (subject seeds from --seed 0).
for twin in "$TWIN" "$other"; do
  [ -f "$OUT/../pid-$twin/summary.json" ] || "$exo" eval --controller pid --twin "$twin" --trials "$TRIALS" --out "$OUT/../pid-$twin"
  "$exo" eval --controller sac --policy "$POLICY" --twin "$twin" --trials "$TRIALS" --out "$OUT/sac-$TWIN-on-$twin"
done
# In-domain comparison (the paper's table) and sim-to-sim transfer (policy trained on $TWIN, run on $other).
"$exo" compare "$OUT/../pid-$TWIN" "$OUT/sac-$TWIN-on-$TWIN" --out "$OUT/compare-$TWIN"
"$exo" compare "$OUT/../pid-$other" "$OUT/sac-$TWIN-on-$other" --out "$OUT/compare-$TWIN-on-$other"
"$exo" compare "$OUT/sac-$TWIN-on-$TWIN" "$OUT/sac-$TWIN-on-$other" --out "$OUT/transfer-$TWIN-to-$other"
echo "results in $OUT (compare-*/compare.md, compare.png)"
