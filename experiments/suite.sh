#!/usr/bin/env bash
# The published-results suite: one CLI call per row, each writing experiments/runs/<row>/.
# Usage: bash experiments/suite.sh [ROW ...]   (no argument: every row; MinAtar rows take hours on a CPU)
# Then: python experiments/collect.py   -> experiments/RESULTS.md and PNGs under docs/
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-64}
# MinAtar with the blines networks (2 x 256): 9-12k env steps/s on 2 cores, so 2 seeds (30-36 min).
MINATAR_SEEDS=${MINATAR_SEEDS:-2}
# The blines MountainCar config updates 64 epochs x 4 minibatches per 512 steps: 32x CartPole's
# update work per step; 64 seeds take about 78 minutes on 2 cores (MOUNTAINCAR_SEEDS=16: about 16).
MOUNTAINCAR_SEEDS=${MOUNTAINCAR_SEEDS:-$SEEDS}
OUT=experiments/runs
run() { local name=$1; shift; python -m jaxppo.run --out "$OUT/$name" --overwrite --eval-episodes 10 --no-progress "$@"; }

declare -A ROWS=(
  [cartpole]="--env CartPole-v1 --seeds $SEEDS"
  [acrobot]="--env Acrobot-v1 --seeds $SEEDS"
  [mountaincar]="--config experiments/configs/mountaincar_blines.toml --seeds $MOUNTAINCAR_SEEDS"
  [pendulum_bootstrap]="--env Pendulum-v1 --seeds $SEEDS --truncation bootstrap"
  [pendulum_terminate]="--env Pendulum-v1 --seeds $SEEDS --truncation terminate"
  [mountaincarcontinuous]="--env MountainCarContinuous-v0 --seeds $SEEDS"
  [breakout]="--config experiments/configs/minatar_blines.toml --env Breakout-MinAtar --seeds $MINATAR_SEEDS"
  [asterix]="--config experiments/configs/minatar_blines.toml --env Asterix-MinAtar --seeds $MINATAR_SEEDS"
  [breakout_default_networks]="--config experiments/configs/minatar_default_networks.toml --env Breakout-MinAtar --seeds 8"
  # MinAtar with the default encoder (a CNN) against the flattened image, same config and budget
  [breakout_cnn]="--config experiments/configs/minatar_cnn.toml --env Breakout-MinAtar --seeds $MINATAR_SEEDS"
  [breakout_cnn_mlp]="--config experiments/configs/minatar_cnn.toml --env Breakout-MinAtar --seeds $MINATAR_SEEDS --encoder mlp"
  [asterix_cnn]="--config experiments/configs/minatar_cnn.toml --env Asterix-MinAtar --seeds $MINATAR_SEEDS"
  [asterix_cnn_mlp]="--config experiments/configs/minatar_cnn.toml --env Asterix-MinAtar --seeds $MINATAR_SEEDS --encoder mlp"
  [freeway_cnn]="--config experiments/configs/minatar_cnn.toml --env Freeway-MinAtar --seeds $MINATAR_SEEDS"
  [freeway_cnn_mlp]="--config experiments/configs/minatar_cnn.toml --env Freeway-MinAtar --seeds $MINATAR_SEEDS --encoder mlp"
  [spaceinvaders_cnn]="--config experiments/configs/minatar_cnn.toml --env SpaceInvaders-MinAtar --seeds $MINATAR_SEEDS"
  [spaceinvaders_cnn_mlp]="--config experiments/configs/minatar_cnn.toml --env SpaceInvaders-MinAtar --seeds $MINATAR_SEEDS --encoder mlp"
  [seaquest_cnn]="--config experiments/configs/minatar_cnn.toml --env Seaquest-MinAtar --seeds $MINATAR_SEEDS"
  [seaquest_cnn_mlp]="--config experiments/configs/minatar_cnn.toml --env Seaquest-MinAtar --seeds $MINATAR_SEEDS --encoder mlp"
  # Env suites (pip install -e ".[envs]")
  [navix_empty5x5]="--config experiments/configs/navix_empty5x5.toml --seeds 8"
  [xminigrid_empty6x6]="--config experiments/configs/xminigrid_empty6x6.toml --seeds 8"
  [jumanji_game2048]="--config experiments/configs/jumanji_game2048.toml --seeds 8"
  # 2 seeds x 131k steps; run with XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= on a CPU (see the config)
  [craftax_classic_short]="--config experiments/configs/craftax_classic.toml --seeds 2 --total-timesteps 131072"
  [brax_inverted_pendulum]="--config experiments/configs/brax_inverted_pendulum.toml --seeds 8"
  [pgx_breakout_cnn]="--config experiments/configs/minatar_cnn.toml --env pgx/minatar-breakout --seeds $MINATAR_SEEDS --env-kwarg sticky_action_prob=0 --env-kwarg max_steps_in_episode=1000"
  [pgx_breakout]="--config experiments/configs/minatar_blines.toml --env pgx/minatar-breakout --seeds $MINATAR_SEEDS"
  # Sensitivity: clip_coef x ent_coef, and vf_coef, 16 seeds per grid point, one compiled call each.
  [sens_cartpole_clip_ent]="--env CartPole-v1 --seeds 16 --grid clip_coef=0.1,0.2,0.3 --grid ent_coef=0,0.01,0.05"
  [sens_cartpole_vf]="--env CartPole-v1 --seeds 16 --grid vf_coef=0.25,0.5,1,2"
  [sens_acrobot_clip_ent]="--env Acrobot-v1 --seeds 16 --grid clip_coef=0.1,0.2,0.3 --grid ent_coef=0,0.01,0.05"
  [sens_acrobot_vf]="--env Acrobot-v1 --seeds 16 --grid vf_coef=0.25,0.5,1,2"
)
ORDER=(cartpole acrobot mountaincar pendulum_bootstrap pendulum_terminate mountaincarcontinuous
       sens_cartpole_clip_ent sens_cartpole_vf sens_acrobot_clip_ent sens_acrobot_vf breakout breakout_default_networks asterix
       breakout_cnn breakout_cnn_mlp asterix_cnn asterix_cnn_mlp freeway_cnn freeway_cnn_mlp
       spaceinvaders_cnn spaceinvaders_cnn_mlp seaquest_cnn seaquest_cnn_mlp
       navix_empty5x5 xminigrid_empty6x6 jumanji_game2048 pgx_breakout_cnn pgx_breakout craftax_classic_short brax_inverted_pendulum)
for name in "${@:-${ORDER[@]}}"; do
  [[ -n "${ROWS[$name]:-}" ]] || { echo "unknown row $name; rows: ${ORDER[*]}" >&2; exit 2; }
  # shellcheck disable=SC2086
  run "$name" ${ROWS[$name]}
done
