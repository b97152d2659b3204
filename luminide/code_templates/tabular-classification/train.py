"""Train an MLP on a tabular data set (``../input/train.csv``; plain PyTorch).

Conventions (Luminide): runs in the experiment's output folder; reads the hyperparameters
from ``config.yaml`` in that folder when present (the run's own copy), else from
``../code/config.yaml``; appends ``history.csv`` while it trains (layout 2: pandas index,
``epoch,iter,train_loss,val_loss,epoch_val_loss``, an ``iter = -1`` row closing each
epoch) and keeps the best ``model.pth``.

    python ../code/train.py --epochs 40 [--stop-after N] [--subset N] [--config PATH]

``--epochs`` is the full length (the learning-rate schedule spans it); ``--stop-after N``
trains only its first N epochs, so a fast run is exactly the start of the full run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

DEFAULTS = {
    "hidden": 64,
    "depth": 2,
    "dropout": 0.1,
    "optimizer": "adam",
    "lr": 0.001,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 64,
    "schedule": "constant",
    "val_fraction": 0.2,
    "val_every": 10,
    "seed": 0,
}


def load_config(path: str | None) -> dict:
    candidates = [Path(path)] if path else [Path("config.yaml"), Path("../code/config.yaml")]
    for candidate in candidates:
        if candidate.is_file():
            loaded = yaml.safe_load(candidate.read_text()) or {}
            if not isinstance(loaded, dict):
                sys.exit(f"{candidate}: expected a mapping of hyperparameters")
            print(f"config: {candidate.resolve()}")
            return {**DEFAULTS, **loaded}
    sys.exit(f"config.yaml not found (looked for {', '.join(map(str, candidates))})")


def load_table(input_dir: Path, subset: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    path = input_dir / "train.csv"
    if not path.is_file():
        sys.exit(f"{path} not found: the project's input/ has no data set")
    frame = pd.read_csv(path, nrows=subset)
    if "label" not in frame.columns:
        sys.exit(f"{path}: needs a 'label' column")
    x = frame.drop(columns="label").to_numpy(np.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    # copy=True: pandas may hand out a read-only view, which torch.from_numpy warns about on
    # every run (and a tensor must not share memory it may not write).
    labels = frame["label"].to_numpy(np.int64, copy=True)
    return torch.from_numpy(x), torch.from_numpy(labels)


def build_model(n_in: int, n_out: int, cfg: dict) -> nn.Module:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(int(cfg["depth"])):
        layers += [nn.Linear(width, int(cfg["hidden"])), nn.ReLU(), nn.Dropout(cfg["dropout"])]
        width = int(cfg["hidden"])
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def build_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    lr, wd = float(cfg["lr"]), float(cfg["weight_decay"])
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg["momentum"]), weight_decay=wd)
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if cfg["optimizer"] == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    sys.exit(f"config.yaml: optimizer must be sgd, adam or adamw, got {cfg['optimizer']!r}")


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="full length of the schedule")
    parser.add_argument("--stop-after", type=int, default=None, help="train only N epochs")
    parser.add_argument("--subset", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--config", default=None)
    parser.add_argument("--input", default="../input")
    args = parser.parse_args()

    cfg = load_config(args.config)
    torch.set_num_threads(1)
    torch.manual_seed(int(cfg["seed"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device}; trial: {os.environ.get('TRIAL', '-')}; config: {cfg}")

    x, y = load_table(Path(args.input), args.subset)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    n_val = max(1, int(len(x) * float(cfg["val_fraction"])))
    x_val, y_val = x[perm[:n_val]].to(device), y[perm[:n_val]].to(device)
    x_train, y_train = x[perm[n_val:]].to(device), y[perm[n_val:]].to(device)
    model = build_model(x.shape[1], int(y.max()) + 1, cfg).to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    if cfg["schedule"] == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    elif cfg["schedule"] == "constant":
        scheduler = None
    else:
        sys.exit(f"config.yaml: schedule must be constant or cosine, got {cfg['schedule']!r}")
    loss_fn = nn.CrossEntropyLoss()
    batch_size, val_every = max(1, int(cfg["batch_size"])), max(1, int(cfg["val_every"]))

    def evaluate(xb: torch.Tensor, yb: torch.Tensor) -> float:
        model.eval()
        with torch.no_grad():
            loss = loss_fn(model(xb), yb).item()
        model.train()
        return loss

    best, index, step = math.inf, 0, 0
    with open("history.csv", "w", buffering=1) as history:
        history.write(",epoch,iter,train_loss,val_loss,epoch_val_loss\n")

        def write_row(epoch, it, train=None, val=None, epoch_val=None) -> None:
            nonlocal index
            history.write(f"{index},{epoch},{it},{fmt(train)},{fmt(val)},{fmt(epoch_val)}\n")
            index += 1

        for epoch in range(min(args.epochs, args.stop_after or args.epochs)):
            order = torch.randperm(len(x_train), device=device)
            for it, start in enumerate(range(0, len(order), batch_size)):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
                step += 1
                if not math.isfinite(loss.item()):
                    write_row(epoch, it, train=loss.item())
                    print(f"epoch {epoch + 1}/{args.epochs}: training diverged; stopping")
                    return
                val = None
                if step % val_every == 0:
                    i = (step // val_every * batch_size) % len(x_val)
                    val = evaluate(x_val[i : i + batch_size], y_val[i : i + batch_size])
                write_row(epoch, it, train=loss.item(), val=val)
            if scheduler is not None:
                scheduler.step()
            val_loss = evaluate(x_val, y_val)
            write_row(epoch, -1, epoch_val=val_loss)
            if val_loss < best:
                best = val_loss
                torch.save(model.state_dict(), "model.pth")
            print(f"epoch {epoch + 1}/{args.epochs}: val loss {val_loss:.4f} (best {best:.4f})")


if __name__ == "__main__":
    main()
