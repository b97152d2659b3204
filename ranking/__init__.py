"""Early Ranking: predict how good a training run will end up from its first epochs.

Pure library (no Django). Public API::

    from ranking import EarlyRanker, read_history

    ranker = EarlyRanker.load()
    score = ranker.score(read_history("history.csv"))  # lower is better
"""

from __future__ import annotations

from ranking._history import HISTORY_COLUMNS, read_history

__all__ = ["HISTORY_COLUMNS", "read_history"]
