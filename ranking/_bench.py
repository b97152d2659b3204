"""``python -m ranking bench``: scoring throughput, reading cost, model load time."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["run_bench", "synthetic_history"]


def synthetic_history(
    rng: np.random.Generator, epochs: int = 50, steps: int = 20, val_every: int = 5
) -> pd.DataFrame:
    """A layout-2 history with a noisy power-law curve (for timing, not for training)."""
    n = epochs * steps
    t = np.arange(n) / steps + 1.0
    level = rng.uniform(0.1, 2.0)
    b = rng.uniform(0.1, 1.0)
    train = level * t**-b * np.exp(rng.normal(0, 0.05, n))
    rows_epoch = np.repeat(np.arange(epochs), steps)
    rows_iter = np.tile(np.arange(steps), epochs)
    val = np.where((rows_iter + 1) % val_every == 0, train * 1.1, np.nan)
    df = pd.DataFrame(
        {
            "epoch": rows_epoch,
            "iter": rows_iter,
            "train_loss": train,
            "val_loss": val,
            "epoch_val_loss": np.nan,
        }
    )
    ends = pd.DataFrame(
        {
            "epoch": np.arange(epochs),
            "iter": -1,
            "train_loss": np.nan,
            "val_loss": np.nan,
            "epoch_val_loss": level * 1.1 * (np.arange(epochs) + 1.0) ** -b,
        }
    )
    out = pd.concat([df, ends]).sort_values(["epoch", "iter"], key=lambda s: s.replace(-1, 10**6))
    return out.reset_index(drop=True)


def run_bench(n: int = 2000, epochs: int = 50, model: str | None = None) -> dict[str, Any]:
    """Time ``score_many`` on ``n`` histories of ``epochs`` epochs with intra-epoch rows.

    Returns a dict of timings; ``score_many_per_s`` is histories per second on one core and
    ``score_vs_read_csv`` the scoring time over the time pandas.read_csv takes to read the
    same histories from CSV text.
    """
    from ranking._history import read_history
    from ranking._ranker import EarlyRanker

    rng = np.random.default_rng(0)
    frames = [synthetic_history(rng, epochs) for _ in range(min(n, 200))]
    frames = [frames[i % len(frames)] for i in range(n)]
    texts = []
    for f in frames[: min(n, 200)]:
        buf = io.StringIO()
        f.to_csv(buf)
        texts.append(buf.getvalue())
    texts = [texts[i % len(texts)] for i in range(n)]

    t = time.process_time()
    ranker = EarlyRanker.load(model)
    load_s = time.process_time() - t

    t = time.process_time()
    for s in texts:
        pd.read_csv(io.StringIO(s))
    read_csv_s = time.process_time() - t

    t = time.process_time()
    read = [read_history(io.StringIO(s)) for s in texts]
    read_history_s = time.process_time() - t

    ranker.score_many(read[:10])  # warm-up
    t = time.process_time()
    scores = ranker.score_many(read)
    score_s = time.process_time() - t

    # A fresh interpreter: what `EarlyRanker.load()` costs a process that has just started,
    # and proof that neither torch nor lightgbm gets imported.
    code = (
        "import time,sys; import pandas; t=time.perf_counter(); "
        f"from ranking import EarlyRanker; r=EarlyRanker.load({model!r}); "
        "print(time.perf_counter()-t, 'torch' in sys.modules, 'lightgbm' in sys.modules)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    fresh_s, torch_loaded, lgb_loaded = out.stdout.split()
    return {
        "histories": n,
        "rows_per_history": len(frames[0]),
        "score_many_s": round(score_s, 4),
        "score_many_per_s": round(n / score_s, 1),
        "read_csv_s": round(read_csv_s, 4),
        "read_history_s": round(read_history_s, 4),
        "score_vs_read_csv": round(score_s / read_csv_s, 3),
        "model_load_s": round(load_s, 4),
        "model_load_fresh_process_s": round(float(fresh_s), 4),
        "torch_imported": torch_loaded == "True",
        "lightgbm_imported": lgb_loaded == "True",
        "finite_scores": int(np.isfinite(scores).sum()),
        "timer": "process CPU time (one core)",
    }
