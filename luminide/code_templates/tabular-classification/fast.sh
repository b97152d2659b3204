#!/usr/bin/env bash
# Fast training: the first 4 epochs of the full 40-epoch schedule, enough for Early Ranking
# to predict the final quality.
set -euo pipefail
python ../code/train.py --epochs 40 --stop-after 4 "$@"
