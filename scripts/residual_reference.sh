#!/usr/bin/env bash
# A residual policy on the reflex-aware reference baseline, for one MAS level, tested against the frontier.
#
#   LEVEL=1 scripts/residual_reference.sh              # train (full twin, this level), export, frontier test
#   LEVEL=1 SKIP_TRAIN=1 scripts/residual_reference.sh # export and test an existing run
#
# The frontier's best hand-tuned controller at a level is the reference PID at that level's speed
# (docs/results.md section 0.1). Here it is the base of a residual SAC policy: at initialisation
# (correction ~ 0) the closed loop is that controller, a point on the frontier, so whatever the policy
# learns starts from the frontier instead of from the plain PID. Base and correction together are
# hard-capped at the user's cap (residual_limit = CAP / 100 N m): the peak can only fall.
#
# Variables (defaults: the run of docs/results.md):
#   LEVEL=1 SEED=0 STEPS=600000 TWIN=full CAP=70 SPEED=<the level's speed: 0.8 / 0.5 / 0.5 / 1.2 rad/s>
#   SCALE=0.3 (the correction's authority, x 100 N m) PEAK_ABOVE=40 PEAK_WEIGHT=3 (reward per N m of the
#   episode's interaction peak above PEAK_ABOVE) SUBJECTS=250 WORKERS=2
#   RUN=runs/train/sac-residual-reference-L<level>-s<seed> POLICY=runs/policies/sac-residual-reference-L<level>
#   OUT=runs/frontier-residual-reference/L<level>/trials.jsonl
# Training resumes from its latest checkpoint when run again; the frontier run skips trials already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exo=${EXO:-.venv/bin/exo}
py=${PYTHON:-.venv/bin/python}
LEVEL=${LEVEL:-1}
SEED=${SEED:-0}
STEPS=${STEPS:-600000}
TWIN=${TWIN:-full}
CAP=${CAP:-70}
speeds=(0.8 0.5 0.5 1.2)
SPEED=${SPEED:-${speeds[$LEVEL]}}
SCALE=${SCALE:-0.3}
PEAK_ABOVE=${PEAK_ABOVE:-40}
PEAK_WEIGHT=${PEAK_WEIGHT:-3}
SUBJECTS=${SUBJECTS:-250}
WORKERS=${WORKERS:-2}
RUN=${RUN:-runs/train/sac-residual-reference-L$LEVEL-s$SEED}
POLICY=${POLICY:-runs/policies/sac-residual-reference-L$LEVEL}
OUT=${OUT:-runs/frontier-residual-reference/L$LEVEL/trials.jsonl}
limit=$("$py" -c "print(round($CAP / 100.0, 6))")

# the reference PID of config/controllers.yaml at this level's speed and the user's cap
base="residual_params={kp: 344.04, ki: 4062.43, kd: 7.2839, peak_velocity_rad_s: $SPEED, torque_limit_nm: $CAP.0, \
dt: 0.01, profile: minimum_jerk, blend_fraction: 0.25, anti_windup: clamp, derivative_filter_s: 0.0, \
derivative_source: difference}"
reward="env_overrides={reward__weights: {pose: 5.0, interaction: 1.0, smoothness: 0.01, acceleration: 0.001, \
range: 10.0, peak: $PEAK_WEIGHT.0}, reward__peak_form: running_max, reward__peak_above_nm: $PEAK_ABOVE.0, \
reward__peak_span_nm: 1.0}"

if [ -z "${SKIP_TRAIN:-}" ]; then
  if [ -f "$RUN/run.json" ]; then
    "$exo" train --algo sac --twin "$TWIN" --steps "$STEPS" --seed "$SEED" --out "$RUN" --resume
  else
    "$exo" train --algo sac --twin "$TWIN" --steps "$STEPS" --seed "$SEED" --out "$RUN" \
      --set "levels=[$LEVEL]" --set eval_trials_per_level=12 --set eval_every_steps=50000 \
      --set checkpoint_every_steps=50000 --set keep_checkpoints=20 \
      --set residual_controller=reference_pid --set "$base" --set "residual_scale=$SCALE" \
      --set "residual_limit=$limit" --set "$reward"
  fi
fi
"$exo" export-policy "$RUN" --out "$POLICY" --which best
# the frontier at this level (caps 60-80 N m: from 85 N m the monitor's interaction limit ends the trials)
# and the policy at the user's cap, on the held-out subjects of section 0.1
"$py" scripts/frontier.py --levels "$LEVEL" --subjects "$SUBJECTS" --workers "$WORKERS" --caps-nm 60 65 70 75 80 \
  --velocities-rad-s 0.5 0.8 1.2 --policies "$POLICY" --policy-caps-nm "$CAP" --out "$OUT"
echo "frontier test in $(dirname "$OUT")/summary.md"
