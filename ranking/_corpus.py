"""Corpus builder: real PyTorch training runs with sampled hyperparameters.

Every run trains a small model on a bundled, offline data set to its full length and records
its history in Luminide's layout 2 (``epoch, iter, train_loss, val_loss, epoch_val_loss``):
one row per minibatch with the train loss, a validation-minibatch loss every few steps and an
epoch-end row (``iter = -1``) with the full validation loss. Runs are identified by an integer
id; the task and the hyperparameters are a pure function of the id, so a build is resumable
and can be split over processes or machines (``--start``/``--runs``).

torch is imported inside the functions that train, never at module import.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TASKS",
    "build_corpus",
    "finalize_corpus",
    "load_corpus",
    "run_one",
    "sample_config",
]

CORPUS_DIR = os.path.join(os.path.dirname(__file__), "corpus")
WORK_DIR = os.path.join(CORPUS_DIR, "work")

# Task name -> (kind, loss); the kind selects data and model in ``_task_data``/``_build_model``.
TASKS: dict[str, tuple[str, str]] = {
    "digits_mlp": ("digits", "ce"),
    "digits_cnn": ("digits_img", "ce"),
    "digits_multilabel": ("digits_ml", "bce"),
    "digits_autoencoder": ("digits_ae", "mse"),
    "breast_cancer_mlp": ("breast_cancer", "ce"),
    "wine_mlp": ("wine", "ce"),
    "diabetes_regression": ("diabetes", "mse"),
    "friedman_regression": ("friedman", "mse"),
    "char_lm_conv": ("text", "ce_seq"),
    "sequence_gru": ("seq", "ce"),
}
TASK_NAMES = list(TASKS)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_config(run_id: int) -> tuple[str, dict[str, Any], int]:
    """Return ``(task, config, seed)`` for a run id; deterministic in the id."""
    rng = np.random.default_rng([20261123, run_id])
    task = TASK_NAMES[run_id % len(TASK_NAMES)]
    opt = str(rng.choice(["sgd", "adam", "adamw"], p=[0.4, 0.3, 0.3]))
    if opt == "sgd":
        lr = _log_uniform(rng, 1e-4, 10.0)
        momentum = float(rng.choice([0.0, 0.5, 0.9, 0.95], p=[0.2, 0.2, 0.45, 0.15]))
    else:
        lr = _log_uniform(rng, 1e-5, 1.0)
        momentum = 0.0
    wd = 0.0 if rng.random() < 0.35 else _log_uniform(rng, 1e-6, 0.3 if opt == "adamw" else 3e-2)
    cfg: dict[str, Any] = {
        "optimizer": opt,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": wd,
        "batch_size": int(rng.choice([32, 64, 128, 256], p=[0.25, 0.35, 0.25, 0.15])),
        "width": int(rng.choice([8, 16, 32, 64, 128, 256])),
        "depth": int(rng.integers(1, 4)),
        "activation": str(rng.choice(["relu", "tanh", "gelu"], p=[0.6, 0.2, 0.2])),
        "dropout": 0.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.6)),
        "augment": bool(rng.random() < 0.4),
        "train_fraction": float(rng.choice([0.2, 0.35, 0.6, 1.0])),
        "schedule": str(rng.choice(["constant", "step", "exponential", "cosine"])),
        "warmup_epochs": int(rng.choice([0, 0, 0, 1, 3])),
        "epochs": int(rng.integers(16, 51)),
        "val_every": int(rng.choice([2, 3, 4, 6])),
    }
    if cfg["schedule"] == "step":
        cfg["step_gamma"] = float(rng.choice([0.1, 0.2, 0.5]))
        cfg["step_every"] = max(1, int(cfg["epochs"] * float(rng.choice([0.25, 0.33, 0.5]))))
    elif cfg["schedule"] == "exponential":
        final = _log_uniform(rng, 1e-3, 0.3)
        cfg["exp_gamma"] = float(final ** (1.0 / cfg["epochs"]))
    seed = int(rng.integers(0, 2**31 - 1))
    return task, cfg, seed


# ---------------------------------------------------------------------------- data


@dataclass
class _Data:
    x_train: Any  # torch tensors
    y_train: Any
    x_val: Any
    y_val: Any
    n_in: int
    n_out: int
    vocab: int = 0


def _split(n: int, val: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = round(n * val)
    return perm[k:], perm[:k]


def _standardise(xtr: np.ndarray, xva: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    return (xtr - mu) / sd, (xva - mu) / sd


def _corpus_text() -> str:
    import sklearn

    root = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "descr")
    files = sorted(glob.glob(os.path.join(root, "*.rst")))
    return "\n".join(Path(p).read_text(encoding="utf-8") for p in files)


@cache
def _task_arrays(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Numpy arrays (fixed train/val split) for a task kind; cached per process."""
    from sklearn import datasets

    vocab = 0
    if kind.startswith("digits"):
        d = datasets.load_digits()
        x = d.data.astype(np.float32) / 16.0
        y = d.target
        tr, va = _split(len(x), 0.3)
        # Cap sizes: a run should average about a second on one core.
        tr, va = tr[: 400 if kind == "digits_img" else 500], va[:300]
        if kind == "digits_ml":
            labels = np.stack(
                [y % 2 == 0, y >= 5, np.isin(y, [2, 3, 5, 7]), np.isin(y, [0, 6, 8, 9])], 1
            ).astype(np.float32)
            return x[tr], labels[tr], x[va], labels[va], 64, 4, 0
        if kind == "digits_ae":
            return x[tr], x[tr], x[va], x[va], 64, 64, 0
        return x[tr], y[tr], x[va], y[va], 64, 10, 0
    if kind in ("breast_cancer", "wine"):
        d = datasets.load_breast_cancer() if kind == "breast_cancer" else datasets.load_wine()
        tr, va = _split(len(d.data), 0.3)
        xtr, xva = _standardise(d.data[tr], d.data[va])
        n_out = int(d.target.max()) + 1
        return xtr, d.target[tr], xva, d.target[va], d.data.shape[1], n_out, 0
    if kind in ("diabetes", "friedman"):
        if kind == "diabetes":
            x, y = datasets.load_diabetes(return_X_y=True)
        else:
            x, y = datasets.make_friedman1(n_samples=700, noise=1.0, random_state=0)
        tr, va = _split(len(x), 0.3)
        xtr, xva = _standardise(x[tr], x[va])
        mu, sd = y[tr].mean(), y[tr].std()
        ytr, yva = ((y[tr] - mu) / sd)[:, None], ((y[va] - mu) / sd)[:, None]
        return xtr, ytr, xva, yva, x.shape[1], 1, 0
    if kind == "text":
        text = _corpus_text()
        chars = sorted(set(text))
        vocab = len(chars)
        ids = np.array([chars.index(c) for c in text], dtype=np.int64)
        seq = 26
        n = len(ids) // seq
        windows = ids[: n * seq].reshape(n, seq)
        tr, va = _split(n, 0.2)
        tr, va = tr[:300], va[:100]
        return windows[tr], windows[tr], windows[va], windows[va], seq - 1, vocab, vocab
    if kind == "seq":
        rng = np.random.default_rng(0)
        x = rng.integers(0, 5, size=(900, 10))
        counts = np.stack([(x == k).sum(1) for k in range(5)], 1)
        y = counts.argmax(1)
        return x[:400], y[:400], x[600:], y[600:], 10, 5, 5
    raise ValueError(f"unknown task kind {kind!r}")


def _task_data(kind: str, train_fraction: float, seed: int) -> _Data:
    import torch

    xtr, ytr, xva, yva, n_in, n_out, vocab = _task_arrays(kind)
    n = max(32, int(len(xtr) * train_fraction))
    idx = np.random.default_rng(seed).permutation(len(xtr))[:n]
    xtr, ytr = xtr[idx], ytr[idx]

    def t(a: np.ndarray) -> Any:
        if a.dtype.kind in "iu":
            return torch.as_tensor(a, dtype=torch.long)
        return torch.as_tensor(a, dtype=torch.float32)

    return _Data(t(xtr), t(ytr), t(xva), t(yva), n_in, n_out, vocab)


# ---------------------------------------------------------------------------- models


def _build_model(kind: str, cfg: dict[str, Any], data: _Data) -> Any:
    import torch
    from torch import nn

    act: Callable[[], nn.Module] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}[
        cfg["activation"]
    ]
    width, depth, p = cfg["width"], cfg["depth"], cfg["dropout"]

    def mlp(n_in: int, n_out: int, bottleneck: int | None = None) -> nn.Module:
        layers: list[nn.Module] = []
        d = n_in
        for i in range(depth):
            w = bottleneck if bottleneck is not None and i == depth - 1 else width
            layers += [nn.Linear(d, w), act()]
            if p > 0:
                layers.append(nn.Dropout(p))
            d = w
        layers.append(nn.Linear(d, n_out))
        return nn.Sequential(*layers)

    if kind == "digits_img":
        c = max(4, min(8, width // 8))

        class Cnn(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(
                    nn.Conv2d(1, c, 3, padding=1),
                    act(),
                    nn.Conv2d(c, 2 * c, 3, padding=1),
                    act(),
                    nn.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Dropout(p) if p > 0 else nn.Identity(),
                    nn.Linear(2 * c * 16, min(width, 64)),
                    act(),
                    nn.Linear(min(width, 64), 10),
                )

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.body(x.view(-1, 1, 8, 8))

        return Cnn()
    if kind == "digits_ae":
        return mlp(64, 64, bottleneck=int(np.clip(width // 8, 2, 16)))
    if kind == "text":
        emb = max(8, min(16, width // 4))
        ch = max(16, min(width, 48))

        class ConvLM(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(data.vocab, emb)
                convs: list[nn.Module] = []
                d_in = emb
                for i in range(depth):
                    convs.append(nn.Conv1d(d_in, ch, 3, dilation=2**i))
                    d_in = ch
                self.convs = nn.ModuleList(convs)
                self.act = act()
                self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
                self.out = nn.Linear(ch, data.vocab)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h = self.emb(x).transpose(1, 2)
                for i, conv in enumerate(self.convs):
                    h = self.act(conv(nn.functional.pad(h, (2 * 2**i, 0))))
                return self.out(self.drop(h.transpose(1, 2)))

        return ConvLM()
    if kind == "seq":
        hid = max(8, min(32, width // 2))

        class Gru(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = nn.Embedding(data.vocab, 8)
                self.gru = nn.GRU(8, hid, batch_first=True, num_layers=1 if depth < 3 else 2)
                self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
                self.out = nn.Linear(hid, data.n_out)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                h, _ = self.gru(self.emb(x))
                return self.out(self.drop(h[:, -1]))

        return Gru()
    return mlp(data.n_in, data.n_out)


# ---------------------------------------------------------------------------- training


def _loss_and_err(loss_kind: str, out: Any, y: Any) -> tuple[Any, Any]:
    """Mean loss, and the error rate (classification) or None."""
    import torch.nn.functional as F

    if loss_kind == "ce":
        return F.cross_entropy(out, y), (out.argmax(1) != y).float().mean()
    if loss_kind == "ce_seq":
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)), None
    if loss_kind == "bce":
        return F.binary_cross_entropy_with_logits(out, y), ((out > 0) != (y > 0.5)).float().mean()
    return F.mse_loss(out, y), None


def _lr_factor(cfg: dict[str, Any], epoch_float: float) -> float:
    epochs = cfg["epochs"]
    f = 1.0
    sched = cfg["schedule"]
    if sched == "step":
        f = cfg["step_gamma"] ** int(epoch_float // cfg["step_every"])
    elif sched == "exponential":
        f = cfg["exp_gamma"] ** epoch_float
    elif sched == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * min(1.0, epoch_float / epochs)))
    w = cfg["warmup_epochs"]
    if w and epoch_float < w:
        f *= (epoch_float + 1e-3) / w
    return f


def run_one(task: str, cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train one run to its full length and return its history and summary.

    Returns:
        A dict with ``history`` (a DataFrame in layout 2 plus ``epoch_val_err`` for
        classification tasks), ``wall_s``, ``epochs_done`` and ``diverged``. A run whose
        train loss becomes non-finite is stopped there (what follows would be NaN anyway).
    """
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    kind, loss_kind = TASKS[task]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _task_data(kind, cfg["train_fraction"], seed)
    model = _build_model(kind, cfg, data)
    params = model.parameters()
    if cfg["optimizer"] == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params,
            lr=cfg["lr"],
            momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"],
            nesterov=cfg["momentum"] > 0 and seed % 2 == 0,
        )
    elif cfg["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    else:
        opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])

    n = len(data.x_train)
    bs = min(cfg["batch_size"], n)
    steps = math.ceil(n / bs)
    nv = len(data.x_val)
    vbs = min(bs, nv)
    aug = cfg["augment"]
    ep_l: list[int] = []
    it_l: list[int] = []
    tr_l: list[float] = []
    va_l: list[float] = []
    ev_l: list[float] = []
    er_l: list[float] = []
    diverged = False
    epoch = 0
    nan = float("nan")

    def augment(x: Any) -> Any:
        if kind.startswith("digits") and kind != "digits_ae":
            img = x.view(-1, 8, 8)
            dx, dy = (int(v) for v in rng.integers(-1, 2, size=2))
            img = torch.roll(img, shifts=(dy, dx), dims=(1, 2))
            return (img + 0.05 * torch.randn_like(img)).view(-1, 64)
        if kind == "digits_ae":
            return x + 0.1 * torch.randn_like(x)
        if x.dtype == torch.long:
            if kind == "text":
                return x  # target shift makes token noise awkward; dropout is its regulariser
            mask = torch.rand(x.shape) < 0.05
            return torch.where(mask, torch.randint_like(x, 0, data.vocab), x)
        return x + 0.1 * torch.randn_like(x)

    def forward(x: Any, y: Any) -> tuple[Any, Any]:
        if kind == "text":
            return _loss_and_err(loss_kind, model(x[:, :-1]), y[:, 1:])
        return _loss_and_err(loss_kind, model(x), y)

    for epoch in range(cfg["epochs"]):
        perm = torch.randperm(n)
        model.train()
        for it in range(steps):
            for g in opt.param_groups:
                g["lr"] = cfg["lr"] * _lr_factor(cfg, epoch + it / steps)
            idx = perm[it * bs : (it + 1) * bs]
            xb, yb = data.x_train[idx], data.y_train[idx]
            if aug:
                xb = augment(xb)
            loss, _ = forward(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = float(loss.item())
            vl = nan
            if (it + 1) % cfg["val_every"] == 0:
                vi = int(rng.integers(0, max(1, nv - vbs + 1)))
                model.eval()
                with torch.no_grad():
                    vl = float(forward(data.x_val[vi : vi + vbs], data.y_val[vi : vi + vbs])[0])
                model.train()
            ep_l.append(epoch)
            it_l.append(it)
            tr_l.append(lv)
            va_l.append(vl)
            ev_l.append(nan)
            er_l.append(nan)
            if not math.isfinite(lv):
                diverged = True
                break
        model.eval()
        with torch.no_grad():
            if diverged:
                ev, er = nan, nan
            else:
                vloss, verr = forward(data.x_val, data.y_val)
                ev = float(vloss)
                er = float(verr) if verr is not None else nan
        ep_l.append(epoch)
        it_l.append(-1)
        tr_l.append(nan)
        va_l.append(nan)
        ev_l.append(ev)
        er_l.append(er)
        if diverged or not math.isfinite(ev):
            diverged = True
            break
    hist = pd.DataFrame(
        {
            "epoch": np.asarray(ep_l, dtype=np.int16),
            "iter": np.asarray(it_l, dtype=np.int16),
            "train_loss": np.asarray(tr_l, dtype=np.float32),
            "val_loss": np.asarray(va_l, dtype=np.float32),
            "epoch_val_loss": np.asarray(ev_l, dtype=np.float32),
            "epoch_val_err": np.asarray(er_l, dtype=np.float32),
        }
    )
    return {
        "history": hist,
        "wall_s": time.perf_counter() - t0,
        "epochs_done": epoch + 1,
        "diverged": diverged,
        "steps_per_epoch": steps,
    }


# ---------------------------------------------------------------------------- storage


def _to_arrow_table(hist: pd.DataFrame, run_id: int) -> Any:
    """Blank cells become parquet nulls (cheap); NaN/inf losses are stored as +inf."""
    import pyarrow as pa

    cols: dict[str, Any] = {
        "run_id": pa.array(np.full(len(hist), run_id, dtype=np.int32)),
        "epoch": pa.array(hist["epoch"].to_numpy(np.int16)),
        "iter": pa.array(hist["iter"].to_numpy(np.int16)),
    }
    blank_train = hist["iter"].to_numpy() == -1
    # A diverged validation minibatch is indistinguishable from a blank cell here; both are
    # rare enough (the run stops at the first non-finite train loss) not to matter.
    val_rows = ~np.isnan(hist["val_loss"].to_numpy())
    for c in ("train_loss", "val_loss", "epoch_val_loss", "epoch_val_err"):
        v = hist[c].to_numpy(np.float32).copy()
        if c == "train_loss":
            mask = blank_train
        elif c == "val_loss":
            mask = ~val_rows
        else:
            mask = ~blank_train if c == "epoch_val_loss" else np.isnan(v)
        v[np.isnan(v) & ~mask] = np.inf
        cols[c] = pa.array(v, mask=mask)
    return pa.table(cols)


def _done_ids(work_dir: str) -> set[int]:
    done: set[int] = set()
    for p in glob.glob(os.path.join(work_dir, "manifest-*.csv")):
        try:
            done.update(pd.read_csv(p, usecols=["run_id"])["run_id"].tolist())
        except (ValueError, pd.errors.EmptyDataError):
            continue
    return done


def _worker(args: tuple[list[int], str, int, int]) -> int:
    """Train the given run ids, writing a shard every ``flush_every`` runs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, work_dir, flush_every, worker = args
    tables: list[Any] = []
    rows: list[dict[str, Any]] = []
    count = 0

    def flush() -> None:
        if not rows:
            return
        stamp = f"{worker:02d}-{rows[0]['run_id']:06d}-{int(time.time() * 1000) % 10**9}"
        tmp = os.path.join(work_dir, f".shard-{stamp}.parquet")
        pq.write_table(pa.concat_tables(tables), tmp, compression="zstd")
        os.replace(tmp, os.path.join(work_dir, f"shard-{stamp}.parquet"))
        # The manifest is written last: a run counts as done only once its shard exists.
        mtmp = os.path.join(work_dir, f".manifest-{stamp}.csv")
        pd.DataFrame(rows).to_csv(mtmp, index=False)
        os.replace(mtmp, os.path.join(work_dir, f"manifest-{stamp}.csv"))
        tables.clear()
        rows.clear()

    for run_id in ids:
        task, cfg, seed = sample_config(run_id)
        res = run_one(task, cfg, seed)
        hist = res["history"]
        ev = hist["epoch_val_loss"].to_numpy()
        ev = ev[np.isfinite(ev)]
        tables.append(_to_arrow_table(hist, run_id))
        rows.append(
            {
                "run_id": run_id,
                "task": task,
                "config": json.dumps(cfg, sort_keys=True),
                "seed": seed,
                "epochs": cfg["epochs"],
                "epochs_done": res["epochs_done"],
                "steps_per_epoch": res["steps_per_epoch"],
                "diverged": res["diverged"],
                "final_best": float(ev.min()) if len(ev) else float("nan"),
                "wall_s": round(res["wall_s"], 4),
            }
        )
        count += 1
        if len(rows) >= flush_every:
            flush()
    flush()
    return count


def build_corpus(
    *,
    runs: int,
    start: int = 0,
    jobs: int = 1,
    work_dir: str = WORK_DIR,
    flush_every: int = 25,
    log: Callable[[str], None] = print,
) -> int:
    """Train runs ``start .. start+runs-1`` not yet in ``work_dir``; return how many ran."""
    os.makedirs(work_dir, exist_ok=True)
    done = _done_ids(work_dir)
    todo = [i for i in range(start, start + runs) if i not in done]
    log(f"{len(done)} runs already done, {len(todo)} to train with {jobs} job(s)")
    if not todo:
        return 0
    t0 = time.time()
    # Small interleaved chunks keep tasks mixed in every shard and balance the workers.
    chunks = [todo[i : i + flush_every] for i in range(0, len(todo), flush_every)]
    total = 0
    if jobs <= 1:
        for chunk in chunks:
            total += _worker((chunk, work_dir, flush_every, 0))
            log(f"{total}/{len(todo)} runs, {time.time() - t0:.0f}s")
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs) as pool:
            args = [(c, work_dir, flush_every, k % 100) for k, c in enumerate(chunks)]
            for n in pool.imap_unordered(_worker, args):
                total += n
                log(f"{total}/{len(todo)} runs, {time.time() - t0:.0f}s")
    return total


def finalize_corpus(work_dir: str = WORK_DIR, out_dir: str = CORPUS_DIR) -> tuple[str, str]:
    """Merge the shards of ``work_dir`` into ``corpus.parquet`` and ``manifest.csv``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = sorted(glob.glob(os.path.join(work_dir, "shard-*.parquet")))
    manifests = sorted(glob.glob(os.path.join(work_dir, "manifest-*.csv")))
    if not shards:
        raise ValueError(f"no shards in {work_dir}")
    man = pd.concat([pd.read_csv(p) for p in manifests], ignore_index=True)
    man = man.drop_duplicates("run_id").sort_values("run_id").reset_index(drop=True)
    table = pa.concat_tables([pq.read_table(p) for p in shards])
    keep = pa.compute.is_in(table["run_id"], value_set=pa.array(man["run_id"].to_numpy(np.int32)))
    table = table.filter(keep)
    # Sort so each run is contiguous and in order (shards may interleave after a resume).
    table = table.sort_by([("run_id", "ascending")])
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "corpus.parquet")
    pq.write_table(table, out, compression="zstd", compression_level=9, row_group_size=1 << 20)
    mout = os.path.join(out_dir, "manifest.csv")
    man.to_csv(mout, index=False)
    return out, mout


def load_corpus(
    path: str | None = None, manifest: str | None = None, work_dir: str | None = None
) -> tuple[dict[int, pd.DataFrame], pd.DataFrame]:
    """Load histories (run id -> layout-2 DataFrame) and the manifest.

    Args:
        path: ``corpus.parquet``; default the shipped one.
        manifest: ``manifest.csv``; default next to ``path``.
        work_dir: Read the partial shards of a build in progress instead.
    """
    import pyarrow.parquet as pq

    if work_dir is not None:
        files = sorted(glob.glob(os.path.join(work_dir, "shard-*.parquet")))
        if not files:
            raise ValueError(f"--work: no corpus shards (shard-*.parquet) in {work_dir}")
        man = pd.concat(
            [pd.read_csv(p) for p in sorted(glob.glob(os.path.join(work_dir, "manifest-*.csv")))],
            ignore_index=True,
        )
        df = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    else:
        path = path or os.path.join(CORPUS_DIR, "corpus.parquet")
        manifest = manifest or os.path.join(os.path.dirname(path), "manifest.csv")
        df = pq.read_table(path).to_pandas()
        man = pd.read_csv(manifest)
    man = man.drop_duplicates("run_id").sort_values("run_id").reset_index(drop=True)
    df = df.sort_values(["run_id"], kind="stable")
    runs: dict[int, pd.DataFrame] = {}
    keep = set(man["run_id"].tolist())
    for rid, g in df.groupby("run_id", sort=True):
        if int(rid) in keep:
            runs[int(rid)] = g.drop(columns=["run_id"]).reset_index(drop=True)
    man = man[man["run_id"].isin(runs)].reset_index(drop=True)
    return runs, man


def iter_ids(start: int, runs: int) -> Iterable[int]:
    return range(start, start + runs)
