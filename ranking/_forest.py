"""A numpy evaluator for LightGBM text models.

Loading the shipped model must be fast and light: ``import lightgbm`` pulls in scikit-learn
(seconds), so inference parses LightGBM's own text format into flat arrays and walks all
trees at once, one level per step. Training still uses LightGBM; a test checks that both give
the same predictions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Forest"]

_ZERO = 1e-35  # LightGBM's kZeroThreshold


class Forest:
    """All trees of a LightGBM regression/ranking model as flat node arrays.

    Leaves are nodes that point to themselves with threshold +inf, so walking ``depth`` steps
    from the roots lands every row on its leaf in every tree.
    """

    def __init__(self, text: str) -> None:
        feat: list[np.ndarray] = []
        thr: list[np.ndarray] = []
        left: list[np.ndarray] = []
        right: list[np.ndarray] = []
        dtype: list[np.ndarray] = []
        value: list[np.ndarray] = []
        roots: list[int] = []
        depth = 1
        offset = 0
        self.feature_names: list[str] = []
        for block in text.split("\nTree=")[1:]:
            body = block.split("\nend of trees")[0]
            kv = dict(line.split("=", 1) for line in body.splitlines()[1:] if "=" in line and line)
            n_leaves = int(kv["num_leaves"])
            leaf = np.array(kv["leaf_value"].split(), dtype=np.float64)
            n_int = n_leaves - 1
            if n_int == 0:
                feat.append(np.zeros(1, np.int64))
                thr.append(np.array([np.inf]))
                left.append(np.array([offset]))
                right.append(np.array([offset]))
                dtype.append(np.zeros(1, np.int64))
                value.append(leaf)
                roots.append(offset)
                offset += 1
                continue
            if int(kv.get("num_cat", "0")) > 0:
                raise ValueError("categorical splits are not supported")
            lc = np.array(kv["left_child"].split(), dtype=np.int64)
            rc = np.array(kv["right_child"].split(), dtype=np.int64)

            def remap(c: np.ndarray, base: int = offset, n: int = n_int) -> np.ndarray:
                # Internal node i -> base + i; leaf ~c -> base + n + ~c.
                return np.where(c >= 0, base + c, base + n + ~c)

            leaf_ids = offset + n_int + np.arange(n_leaves)
            feat.append(
                np.r_[np.array(kv["split_feature"].split(), np.int64), np.zeros(n_leaves, np.int64)]
            )
            thr.append(
                np.r_[np.array(kv["threshold"].split(), np.float64), np.full(n_leaves, np.inf)]
            )
            left.append(np.r_[remap(lc), leaf_ids])
            right.append(np.r_[remap(rc), leaf_ids])
            dtype.append(
                np.r_[np.array(kv["decision_type"].split(), np.int64), np.zeros(n_leaves, np.int64)]
            )
            value.append(np.r_[np.zeros(n_int), leaf])
            roots.append(offset)
            depth = max(depth, _depth(lc, rc))
            offset += n_int + n_leaves
        head = text.split("\nTree=")[0]
        for line in head.splitlines():
            if line.startswith("feature_names="):
                self.feature_names = line.split("=", 1)[1].split()
        if not roots:
            raise ValueError("no trees in model text")
        self.feat = np.concatenate(feat)
        self.thr = np.concatenate(thr)
        self.left = np.concatenate(left)
        self.right = np.concatenate(right)
        dt = np.concatenate(dtype)
        if (dt & 1).any():
            raise ValueError("categorical splits are not supported")
        self.default_left = (dt & 2) > 0
        self.missing = (dt >> 2) & 3  # 0 none, 1 zero, 2 NaN
        self.value = np.concatenate(value)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw scores (sum of leaf values) for a 2-D float array of features."""
        X = np.asarray(X, dtype=np.float64)
        n = X.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            x = X[rows, self.feat[node]]
            isnan = np.isnan(x)
            mt = self.missing[node]
            x = np.where(isnan & (mt != 2), 0.0, x)
            default = ((mt == 1) & (np.abs(x) <= _ZERO)) | ((mt == 2) & isnan)
            go_left = np.where(default, self.default_left[node], x <= self.thr[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node].sum(axis=1)


def _depth(lc: np.ndarray, rc: np.ndarray) -> int:
    best = 0
    stack = [(0, 1)]
    while stack:
        i, d = stack.pop()
        best = max(best, d)
        for c in (lc[i], rc[i]):
            if c >= 0:
                stack.append((int(c), d + 1))
    return best
