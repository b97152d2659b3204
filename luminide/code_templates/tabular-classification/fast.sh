#!/usr/bin/env bash
# Fast training: a few epochs, enough for Early Ranking to predict the final quality.
set -euo pipefail
python ../code/train.py --epochs 4 "$@"
