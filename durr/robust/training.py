"""Training loops (natural, PGD-k, YOPO-m-n) and robust evaluation for classifiers.

The model is any ``nn.Module`` classifier; YOPO additionally needs it split into a first layer
and the rest (``model.first_layer`` and ``model.rest(z)``, as :class:`durr.schemes.Backbone`
provides). The digits experiment of ``durr bench robust`` is :func:`run_digits`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from durr.robust.attacks import classification_loss, pgd_attack
from durr.robust.yopo import yopo_step

Tensor = torch.Tensor

__all__ = ["AdvConfig", "train_classifier", "accuracy", "robust_accuracy", "load_digits_tensors", "run_digits"]


@dataclass
class AdvConfig:
    """One training run: method ``natural`` | ``pgd`` | ``yopo`` and its settings."""

    method: str = "natural"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    eps: float = 0.1              # L-infinity radius, inputs in [0, 1]
    pgd_k: int = 10               # PGD-k training
    pgd_step: float | None = None  # default 2.5 eps / k
    yopo_m: int = 5
    yopo_n: int = 3
    yopo_step: float | None = None  # default 2 eps / n
    seed: int = 0
    extra: dict = field(default_factory=dict)


def train_classifier(model: nn.Module, x: Tensor, y: Tensor, cfg: AdvConfig) -> dict:
    """Train ``model`` on ``(x, y)`` (N, ...) / (N,) with ``cfg``.

    Returns ``{"seconds", "cpu_seconds", "losses"}``: wall time, the process's CPU time (less
    sensitive to other jobs on a shared machine), and the mean loss of every epoch.
    """
    if cfg.method not in ("natural", "pgd", "yopo"):
        raise ValueError(f"unknown training method {cfg.method!r}; choose natural, pgd or yopo")
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    pgd_step = cfg.pgd_step if cfg.pgd_step is not None else 2.5 * cfg.eps / cfg.pgd_k
    yopo_step_size = cfg.yopo_step if cfg.yopo_step is not None else 2.0 * cfg.eps / cfg.yopo_n
    losses = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=g)
        epoch_loss = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i: i + cfg.batch_size]
            xb, yb = x[idx], y[idx]
            if cfg.method == "yopo":
                epoch_loss += yopo_step(model.first_layer, model.rest, opt, xb, yb, cfg.eps, yopo_step_size,
                                        cfg.yopo_m, cfg.yopo_n, generator=g) * len(idx)
                continue
            if cfg.method == "pgd":
                xb = pgd_attack(model, xb, classification_loss(yb), cfg.eps, pgd_step, cfg.pgd_k, clamp=(0.0, 1.0),
                                generator=g)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            epoch_loss += float(loss.detach()) * len(idx)
        sched.step()
        losses.append(epoch_loss / len(x))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "losses": losses}


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Fraction of ``x`` classified as ``y``."""
    correct = sum(int((model(x[i: i + batch_size]).argmax(1) == y[i: i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / len(x)


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, eps: float, k: int = 20, step: float | None = None,
                    batch_size: int = 256, seed: int = 1) -> float:
    """Accuracy under a PGD-k attack (random start, ``step = 2.5 eps / k`` by default)."""
    step = 2.5 * eps / k if step is None else step
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i: i + batch_size], y[i: i + batch_size]
        x_adv = pgd_attack(model, xb, classification_loss(yb), eps, step, k, clamp=(0.0, 1.0), generator=g)
        with torch.no_grad():
            correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(x)


def load_digits_tensors(test_size: int = 497, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's digits (offline): ``x`` (N, 1, 8, 8) in [0, 1], ``y`` (N,); a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(range(len(y)), test_size=test_size, random_state=seed,
                                           stratify=data.target)
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def run_digits(methods: tuple[str, ...] = ("natural", "pgd", "yopo"), *, channels: int = 32, depth: int = 4,
               rule: str = "euler", eval_k: int = 20, epochs_at: dict | None = None, **overrides) -> list[dict]:
    """Train one digits classifier per method (same model, data, epochs) and evaluate each.

    Rows: ``{"method", "clean_acc", "pgd20_acc", "train_seconds", "train_cpu_seconds",
    "config"}``. The model is ``build_backbone(rule, channels, depth, num_classes=10, pool=4)``
    on 8x8 inputs. ``methods`` may repeat a method; ``epochs_at`` maps a position in ``methods``
    to its own epoch count (e.g. ``{3: 10}`` for a shorter fourth run).
    """
    from durr.schemes import build_backbone

    x_tr, y_tr, x_te, y_te = load_digits_tensors()
    rows = []
    for i, method in enumerate(methods):
        cfg = AdvConfig(method=method, **overrides)
        if epochs_at and i in epochs_at:
            cfg.epochs = epochs_at[i]
        torch.manual_seed(cfg.seed)
        model = build_backbone(rule, channels=channels, depth=depth, num_classes=10, pool=4)
        info = train_classifier(model, x_tr, y_tr, cfg)
        model.eval()
        label = {"natural": "natural", "pgd": f"PGD-{cfg.pgd_k}", "yopo": f"YOPO-{cfg.yopo_m}-{cfg.yopo_n}"}[method]
        rows.append({
            "method": label,
            "epochs": cfg.epochs,
            "clean_acc": accuracy(model, x_te, y_te),
            f"pgd{eval_k}_acc": robust_accuracy(model, x_te, y_te, cfg.eps, k=eval_k),
            "train_seconds": info["seconds"],
            "train_cpu_seconds": info["cpu_seconds"],
            "final_loss": info["losses"][-1],
            "config": asdict(cfg),
        })
    return rows
