"""Trainer callbacks for NAM's sparsity penalty, as an Ultralytics ``{event: fn}`` dict.

``yolo_attn.register()`` adds them to Ultralytics' default callbacks, so every trainer in a process that imported
the kit has them (also DDP workers, which unpickle the trainer's callbacks by these import paths). They do nothing
for models without NAM layers and with no penalty set.

- ``on_train_start``: resolve ``p``/scope (CLI option > model YAML), record them in the model YAML so checkpoints
  carry them, and wrap ``trainer.optimizer_step`` to add the subgradient once per optimizer step.
- ``on_train_epoch_end``: add ``nam/penalty`` (p * L1), ``nam/l1``, ``nam/mean_abs_gamma`` and ``nam/sparsity``
  (fraction of |gamma| below ``SPARSITY_THRESHOLD``) to the epoch's log row, i.e. to ``results.csv``.
- ``on_train_end``: save ``nam_gamma.png``, a histogram of the final |gamma| per NAM layer, when ``plots=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..modules import NAM
from .penalty import add_penalty_grad, penalized_parameters, resolve_settings, unwrap
from .saliency import SPARSITY_THRESHOLD, nam_layers

__all__ = ["callbacks", "PenaltyState"]


@dataclass
class PenaltyState:
    """What the penalty does in one training run (kept on the trainer as ``trainer.nam_penalty``).

    Attributes:
        p (float): Penalty weight.
        scope (str): ``"nam"`` or ``"all"``.
        params (list[nn.Parameter]): Penalised scale factors.
        steps (int): Optimizer steps the penalty was applied to.
    """

    p: float
    scope: str
    params: list[nn.Parameter] = field(default_factory=list)
    steps: int = 0


def _amp_scale(scaler: Any) -> float | torch.Tensor:
    """Return the GradScaler's current scale without a host sync where possible (1.0 when AMP is off)."""
    if scaler is None or not scaler.is_enabled():
        return 1.0
    scale = getattr(scaler, "_scale", None)
    return scale if isinstance(scale, torch.Tensor) else scaler.get_scale()


def on_train_start(trainer: Any) -> None:
    """Resolve the penalty, store it in the model YAML and wrap ``optimizer_step`` to apply it."""
    model = unwrap(trainer.model)
    if not isinstance(getattr(model, "yaml", None), dict):
        return
    p, scope = resolve_settings(model.yaml)
    if "nam_penalty" in model.yaml or p > 0:
        model.yaml["nam_penalty"], model.yaml["nam_penalty_scope"] = p, scope  # saved with every checkpoint
    state = trainer.nam_penalty = PenaltyState(p, scope, penalized_parameters(model, scope) if p > 0 else [])
    if not state.params:
        return
    original = trainer.optimizer_step

    def optimizer_step() -> None:
        add_penalty_grad(state.params, state.p, _amp_scale(getattr(trainer, "scaler", None)))
        state.steps += 1
        original()

    trainer.optimizer_step = optimizer_step
    from ultralytics.utils import LOGGER

    n = sum(w.numel() for w in state.params)
    LOGGER.info(f"yolo-attn: NAM L1 sparsity penalty p={p:g} (scope={scope}) on {len(state.params)} tensors, {n} scale factors")


@torch.no_grad()
def on_train_epoch_end(trainer: Any) -> None:
    """Add the penalty value and the NAM sparsity statistics to the epoch's ``results.csv`` row."""
    gammas = [m.bn.weight for _, m in nam_layers(unwrap(trainer.model))]
    if not gammas or not isinstance(getattr(trainer, "lr", None), dict):
        return
    state = getattr(trainer, "nam_penalty", None)
    p = state.p if state else 0.0
    l1 = sum(w.abs().sum() for w in (state.params if state and state.params else gammas))
    g = torch.cat([w.detach().abs().flatten() for w in gammas])
    trainer.lr.update(  # Ultralytics writes this dict into results.csv (and hands it to loggers) after this event
        {
            "nam/penalty": float(p * l1),
            "nam/l1": float(l1),
            "nam/mean_abs_gamma": float(g.mean()),
            "nam/sparsity": float((g < SPARSITY_THRESHOLD).float().mean()),
        }
    )


def on_train_end(trainer: Any) -> None:
    """Save a histogram of the final |gamma| of every NAM layer into the run directory."""
    if not getattr(trainer.args, "plots", False) or getattr(trainer, "ema", None) is None:
        return
    layers = nam_layers(trainer.ema.ema)
    if not layers:
        return
    try:
        trainer.on_plot(plot_gamma_histograms(layers, Path(trainer.save_dir) / "nam_gamma.png"))
    except Exception as e:  # noqa: BLE001 - a plot must never fail a finished training run
        from ultralytics.utils import LOGGER

        LOGGER.warning(f"yolo-attn: could not plot NAM |gamma| histograms: {e}")


def plot_gamma_histograms(layers: list[tuple[str, NAM]], path: Path) -> Path:
    """Plot one |gamma| histogram per NAM layer into a PNG.

    Args:
        layers (list[tuple[str, NAM]]): ``(layer name, NAM)`` pairs.
        path (Path): Output PNG.

    Returns:
        (Path): ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; Ultralytics' own plots do the same
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 2.8), tight_layout=True, squeeze=False)
    for ax, (name, m) in zip(axes[0], layers):
        g = m.bn.weight.detach().abs().float().cpu().numpy()
        hi = max(float(g.max()), SPARSITY_THRESHOLD) * 1.05  # from 0: shows the threshold, never a zero-width range
        ax.hist(g, bins=30, range=(0.0, hi), color="#1f77b4")
        ax.axvline(SPARSITY_THRESHOLD, color="r", lw=1, ls="--")
        ax.set_title(f"{name} ({g.size} ch, {(g < SPARSITY_THRESHOLD).sum()} < {SPARSITY_THRESHOLD:g})", fontsize=8)
        ax.set_xlabel("|gamma|", fontsize=8)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


callbacks = {"on_train_start": on_train_start, "on_train_epoch_end": on_train_epoch_end, "on_train_end": on_train_end}
