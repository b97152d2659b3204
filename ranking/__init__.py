"""Early Ranking: predict how good a training run will end up from its first epochs.

Pure library (no Django, no torch at import). Public API::

    from ranking import EarlyRanker, read_history

    ranker = EarlyRanker.load()                             # the shipped model
    score = ranker.score(read_history("history.csv"))       # lower is better
    scores = ranker.score_many([df1, df2])                  # 1-D numpy array

Command line: ``python -m ranking {score,build-corpus,train,evaluate,bench}``.
"""

from __future__ import annotations

from ranking._features import FEATURE_NAMES
from ranking._history import HISTORY_COLUMNS, read_history
from ranking._ranker import DEFAULT_MODEL, EarlyRanker

__all__ = ["DEFAULT_MODEL", "FEATURE_NAMES", "HISTORY_COLUMNS", "EarlyRanker", "read_history"]
