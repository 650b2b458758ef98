"""Trainer callbacks for the L1 sparsity penalty (``nam_penalty``), as an Ultralytics ``{event: fn}`` dict.

``yolo_attn.register()`` adds them to Ultralytics' default callbacks, so every trainer in a process that imported
the kit has them (also DDP workers, which unpickle the trainer's callbacks by these import paths). They do nothing
for models without scale factors in scope and with no penalty set.

- ``on_train_start`` (after the optimizer is built and a resumed run's state loaded): resolve ``p``/scope (CLI
  option > model YAML), store them in the model YAML so checkpoints carry them, and attach an optimizer step
  pre-hook (:class:`~yolo_attn.training.penalty.L1Subgradient`) that adds exactly ``p * sign(gamma)`` to each
  optimizer step, after AMP unscaling and gradient clipping.
- ``on_train_epoch_start``: follow the trainer to a new optimizer object, should one replace the old.
- ``on_train_epoch_end``: add ``nam/penalty`` (p * L1), ``nam/l1``, ``nam/mean_abs_gamma`` and ``nam/sparsity``
  (fraction of |gamma| below ``SPARSITY_THRESHOLD``) over the scale factors in scope to the epoch's log row, i.e. to
  ``results.csv``.
- ``on_train_end``: save ``nam_gamma.png``, a histogram of the final |gamma| of each block's scale factors, when
  ``plots=True``; detach the hook (``teardown`` detaches it too, also after a failed run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .penalty import L1Subgradient, penalized_parameters, resolve_setting, store_setting, unwrap
from .saliency import SPARSITY_THRESHOLD, scale_factor_tensors

__all__ = ["callbacks", "PenaltyState", "plot_gamma_histograms"]


@dataclass
class PenaltyState:
    """What the penalty does in one training run (kept on the trainer as ``trainer.nam_penalty``).

    Attributes:
        p (float): Penalty weight.
        scope (str): ``"nam"`` or ``"all"``.
        params (list[nn.Parameter]): Penalised scale factors (empty when ``p == 0``).
        factors (list[nn.Parameter]): Scale factors in scope, reported each epoch whether penalised or not.
        hook (L1Subgradient | None): The optimizer hook applying the penalty.
    """

    p: float
    scope: str
    params: list[nn.Parameter] = field(default_factory=list)
    factors: list[nn.Parameter] = field(default_factory=list)
    hook: L1Subgradient | None = None

    @property
    def steps(self) -> int:
        """Optimizer steps the penalty was applied to."""
        return self.hook.steps if self.hook is not None else 0


def on_train_start(trainer: Any) -> None:
    """Resolve the penalty, store it in the model YAML and attach the subgradient hook to the trainer's optimizer."""
    model = unwrap(trainer.model)
    if not isinstance(getattr(model, "yaml", None), dict):
        return
    p, scope = resolve_setting(model.yaml)
    if "nam_penalty" in model.yaml or p > 0:
        store_setting(model, p, scope)  # saved with every checkpoint
    factors = penalized_parameters(model, scope)
    state = trainer.nam_penalty = PenaltyState(p, scope, factors if p > 0 else [], factors)
    if not state.params:
        return
    state.hook = L1Subgradient(state.params, p).attach(trainer.optimizer)
    from ultralytics.utils import LOGGER

    n = sum(w.numel() for w in state.params)
    LOGGER.info(f"yolo-attn: L1 sparsity penalty p={p:g} (scope={scope}) on {len(state.params)} tensors, {n} scale "
                "factors, added to every optimizer step after unscaling and clipping")


def on_train_epoch_start(trainer: Any) -> None:
    """Keep the hook on the trainer's current optimizer (a trainer that rebuilds its optimizer gets it moved)."""
    hook = getattr(getattr(trainer, "nam_penalty", None), "hook", None)
    if hook is not None and hook.optimizer is not trainer.optimizer:
        hook.attach(trainer.optimizer)


@torch.no_grad()
def on_train_epoch_end(trainer: Any) -> None:
    """Add the penalty value and the sparsity of the scale factors in scope to the epoch's ``results.csv`` row."""
    state = getattr(trainer, "nam_penalty", None)
    if state is None or not state.factors or not isinstance(getattr(trainer, "lr", None), dict):
        return
    g = torch.cat([w.detach().abs().float().flatten() for w in state.factors])
    l1 = float(g.sum())
    trainer.lr.update(  # Ultralytics writes this dict into results.csv (and hands it to loggers) after this event
        {
            "nam/penalty": state.p * l1,
            "nam/l1": l1,
            "nam/mean_abs_gamma": float(g.mean()),
            "nam/sparsity": float((g < SPARSITY_THRESHOLD).float().mean()),
        }
    )


def _detach(trainer: Any) -> None:
    """Remove the penalty hook from the optimizer (idempotent)."""
    hook = getattr(getattr(trainer, "nam_penalty", None), "hook", None)
    if hook is not None:
        hook.remove()


def on_train_end(trainer: Any) -> None:
    """Detach the hook; save histograms of the blocks' final |gamma| into the run directory."""
    _detach(trainer)
    if not getattr(trainer.args, "plots", False) or getattr(trainer, "ema", None) is None:
        return
    tensors = scale_factor_tensors(trainer.ema.ema)
    if not tensors:
        return
    try:
        trainer.on_plot(plot_gamma_histograms(tensors, Path(trainer.save_dir) / "nam_gamma.png"))
    except Exception as e:  # noqa: BLE001 - a plot must never fail a finished training run
        from ultralytics.utils import LOGGER

        LOGGER.warning(f"yolo-attn: could not plot |gamma| histograms: {e}")


def plot_gamma_histograms(tensors: list[tuple[str, str, Any, torch.Tensor]], path: Path) -> Path:
    """Plot one |gamma| histogram per scale-factor tensor into a PNG.

    Args:
        tensors (list[tuple]): ``(layer, parameter name, block, |values|)`` as from ``scale_factor_tensors``.
        path (Path): Output PNG.

    Returns:
        (Path): ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; Ultralytics' own plots do the same
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tensors), figsize=(3.2 * len(tensors), 2.8), tight_layout=True, squeeze=False)
    for ax, (layer, param, m, g) in zip(axes[0], tensors):
        g = g.cpu().numpy()
        hi = max(float(g.max()), SPARSITY_THRESHOLD) * 1.05  # from 0: shows the threshold, never a zero-width range
        ax.hist(g, bins=30, range=(0.0, hi), color="#1f77b4")
        ax.axvline(SPARSITY_THRESHOLD, color="r", lw=1, ls="--")
        low = (g < SPARSITY_THRESHOLD).sum()
        ax.set_title(f"{layer} {type(m).__name__} {param}\n{g.size} ch, {low} < {SPARSITY_THRESHOLD:g}", fontsize=8)
        ax.set_xlabel("|gamma|", fontsize=8)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


callbacks = {
    "on_train_start": on_train_start,
    "on_train_epoch_start": on_train_epoch_start,
    "on_train_epoch_end": on_train_epoch_end,
    "on_train_end": on_train_end,
    "teardown": _detach,
}
