#!/usr/bin/env bash
# Full training. Runs in the experiment's output folder; ../code is the code, ../input the data.
set -euo pipefail
python ../code/train.py --epochs 40 "$@"
