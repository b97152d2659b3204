"""Train a small CNN on the images in ../input (plain PyTorch, no torchvision).

Conventions (Luminide): runs in the experiment's output folder; reads the hyperparameters
from ``config.yaml`` in that folder when present (the run's own copy), else from
``../code/config.yaml``; reads images listed in ``../input/labels.csv``; appends
``history.csv`` (layout 3) while it trains and keeps the best ``model.pth``.

    python ../code/train.py --epochs 30 [--stop-after N] [--subset N] [--config PATH]

``--epochs`` is the full length; ``--stop-after N`` trains only its first N epochs, so a fast
run is exactly the start of the full run (add a learning-rate schedule over ``--epochs`` and
``fast.sh`` still reads the full run's first epochs).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from torch import nn

DEFAULTS = {
    "arch": "small",
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 0.0001,
    "batch_size": 32,
    "dropout": 0.2,
    "val_fraction": 0.2,
    "val_every": 5,
    "seed": 0,
}
HISTORY_HEADER = "index,epoch,sample_count,train_loss,val_loss,epoch_val_loss\n"


def load_config(path: str | None) -> dict:
    candidates = [Path(path)] if path else [Path("config.yaml"), Path("../code/config.yaml")]
    for candidate in candidates:
        if candidate.is_file():
            with open(candidate) as fh:
                loaded = yaml.safe_load(fh) or {}
            if not isinstance(loaded, dict):
                sys.exit(f"{candidate}: expected a mapping of hyperparameters")
            unknown = sorted(set(loaded) - set(DEFAULTS))
            if unknown:
                print(f"warning: {candidate}: unused keys {', '.join(unknown)}", file=sys.stderr)
            print(f"config: {candidate.resolve()}")
            return {**DEFAULTS, **loaded}
    sys.exit(f"config.yaml not found (looked for {', '.join(map(str, candidates))})")


def load_images(input_dir: Path, subset: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``labels.csv`` (filename,label) and the grayscale images it lists."""
    labels_csv = input_dir / "labels.csv"
    if not labels_csv.is_file():
        sys.exit(f"{labels_csv} not found: the project's input/ has no data set")
    with open(labels_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if subset:
        rows = rows[:subset]
    images, labels = [], []
    for row in rows:
        with Image.open(input_dir / row["filename"]) as img:
            images.append(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)
        labels.append(int(row["label"]))
    x = torch.from_numpy(np.stack(images)).unsqueeze(1)
    return (x - 0.5) / 0.5, torch.tensor(labels)


def build_model(arch: str, n_classes: int, dropout: float) -> nn.Module:
    widths = {"small": (16, 32), "wide": (48, 96), "deep": (16, 32, 64)}
    if arch not in widths:
        sys.exit(f"config.yaml: arch must be one of {', '.join(widths)}, got {arch!r}")
    layers: list[nn.Module] = []
    channels = 1
    for i, width in enumerate(widths[arch]):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        channels = width
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels, 64),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(64, n_classes),
    ]
    return nn.Sequential(*layers)


def build_optimizer(cfg: dict, params) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
        )
    if cfg["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sys.exit(f"config.yaml: optimizer must be sgd or adam, got {cfg['optimizer']!r}")


def fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stop-after", type=int, default=None, help="train only N epochs")
    parser.add_argument("--subset", type=int, default=None, help="use only the first N images")
    parser.add_argument("--config", default=None)
    parser.add_argument("--input", default="../input")
    args = parser.parse_args()

    cfg = load_config(args.config)
    torch.set_num_threads(1)
    random.seed(cfg["seed"])
    np.random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device}; trial: {os.environ.get('TRIAL', '-')}; config: {cfg}")

    x, y = load_images(Path(args.input), args.subset)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))
    n_val = max(1, int(len(x) * float(cfg["val_fraction"])))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    x_train, y_train = x[train_idx].to(device), y[train_idx].to(device)
    x_val, y_val = x[val_idx].to(device), y[val_idx].to(device)
    n_classes = int(y.max()) + 1
    print(f"data: {len(x_train)} train / {len(x_val)} val images, {n_classes} classes")

    model = build_model(cfg["arch"], n_classes, float(cfg["dropout"])).to(device)
    optimizer = build_optimizer(cfg, model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    batch_size = max(1, int(cfg["batch_size"]))
    val_every = max(1, int(cfg["val_every"]))

    def val_minibatch_loss(step: int) -> float:
        # One validation minibatch, cycling through the validation set.
        start = (step // val_every * batch_size) % len(x_val)
        xb, yb = x_val[start : start + batch_size], y_val[start : start + batch_size]
        model.eval()
        with torch.no_grad():
            loss = loss_fn(model(xb), yb).item()
        model.train()
        return loss

    def full_val() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            loss = loss_fn(logits, y_val).item()
            acc = (logits.argmax(1) == y_val).float().mean().item()
        model.train()
        return loss, acc

    best = math.inf
    index = 0
    start_time = time.time()
    with open("history.csv", "w", buffering=1) as history:
        history.write(HISTORY_HEADER)

        def write_row(epoch, samples, train=None, val=None, epoch_val=None) -> None:
            nonlocal index
            history.write(f"{index},{epoch},{samples},{fmt(train)},{fmt(val)},{fmt(epoch_val)}\n")
            index += 1

        step = 0
        for epoch in range(min(args.epochs, args.stop_after or args.epochs)):
            order = torch.randperm(len(x_train), device=device)
            samples = 0
            model.train()
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
                samples += len(batch)
                train_loss = loss.item()
                step += 1
                if not math.isfinite(train_loss):
                    write_row(epoch, samples, train=train_loss)
                    where = f"epoch {epoch + 1}/{args.epochs}"
                    print(f"{where}: training diverged (loss {train_loss}); stopping")
                    return
                val = val_minibatch_loss(step) if step % val_every == 0 else None
                write_row(epoch, samples, train=train_loss, val=val)
            val_loss, val_acc = full_val()
            write_row(epoch, samples, epoch_val=val_loss)
            marker = ""
            if val_loss < best:
                best = val_loss
                torch.save(model.state_dict(), "model.pth")
                marker = " (best, saved model.pth)"
            print(
                f"epoch {epoch + 1}/{args.epochs}: val_loss {val_loss:.4f} val_acc {val_acc:.3f} "
                f"[{time.time() - start_time:.1f}s]{marker}",
                flush=True,
            )
    print(f"done: best val_loss {best:.4f}")


if __name__ == "__main__":
    main()
