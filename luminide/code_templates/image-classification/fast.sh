#!/usr/bin/env bash
# Fast training: the first 3 epochs of the full 30-epoch run, enough for Early Ranking to
# predict the final quality.
set -euo pipefail
python ../code/train.py --epochs 30 --stop-after 3 "$@"
