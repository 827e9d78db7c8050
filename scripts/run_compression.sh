#!/usr/bin/env bash
# The paper's compression experiment (the original's src/run_compression.sh): hat-test on mixture, first task only
# (--single-task), one seed per data set: the seed whose shuffled task order puts that data set first (seed 0
# facescrub, 1 notmnist, 2 fashion-mnist, 3 traffic-signs, 6 cifar10, 10 mnist, 13 cifar100, 25 svhn).
#     bash scripts/run_compression.sh [c [smax [run_multi flags...]]]      e.g. bash scripts/run_compression.sh 0.75 400
# Results: res/mixture_hat-test-<c>-<smax>_<seed>.txt; masks and per-epoch logs: logs/mixture_hat-test-<c>-<smax>_
# <seed>_masks.pkz (python src/plot_results.py masks <that file>). Any run_multi.py flag may follow, e.g.
# --backend slurm or --workers 3.
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-0.75}
SMAX=${2:-400}
exec python src/run_multi.py --experiments mixture --approaches hat-test --seeds 0,1,2,3,6,10,13,25 \
    --grid lamb="$C" --grid smax="$SMAX" "${@:3}" -- --single-task
