#!/usr/bin/env bash
# HAT's hyperparameter grid, the original's work.py: c (lamb) x smax, 8 x 6 = 48 runs of one seed.
#     bash scripts/grid_hat.sh [experiment [run_multi flags...]]        e.g. bash scripts/grid_hat.sh cifar --workers 3
# Results: res/<experiment>_hat-<c>-<smax>_0.txt, the original's names; compare them with
#     python src/plot_results.py table --experiment cifar --approaches hat-0.75-400,hat-0.1-25,... --seeds 0
set -euo pipefail
cd "$(dirname "$0")/.."
EXPERIMENT=${1:-cifar}
exec python src/run_multi.py --experiments "$EXPERIMENT" --approaches hat --seeds 0 \
    --grid lamb=0.1,0.25,0.5,0.75,1,1.5,2.5,4 --grid smax=25,50,100,200,400,800 "${@:2}"
