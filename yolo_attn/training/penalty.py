"""NAM's L1 sparsity penalty on normalisation scale factors, applied as a subgradient once per optimizer step.

The NAM paper adds ``p * sum|gamma| + p * sum|lambda|`` to the loss; the authors (network-slimming style) add the
subgradient ``p * sign(gamma)`` to the gradients after backward and before the optimizer step. Ultralytics fires no
callback between the two, so ``on_train_start`` wraps the trainer's ``optimizer_step``:

- AMP: gradients are still scaled when ``optimizer_step`` starts (it unscales them itself), so the term added is
  ``p * scale * sign(gamma)``; after the unscale it is exactly ``p * sign(gamma)`` (scale is 1.0 without AMP).
- Gradient accumulation: ``optimizer_step`` runs once per step, so the term is added once per step, whatever
  ``accumulate`` is.
- DDP: gradients are all-reduced during backward and parameters are identical on every rank, so every rank adds
  the same term.
- It interacts with ``clip_grad_norm_`` (run after the unscale, max norm 10: the penalty counts towards the norm)
  and with the optimizer: Ultralytics puts BN weights in the no-weight-decay group, so the penalty is the only
  shrinkage they get; with Adam-type optimizers the update is normalised per parameter, so the effective pull
  depends on the gradient history rather than being ``lr * p``.

The setting lives in the model YAML (``nam_penalty``, ``nam_penalty_scope``) so it travels with the config and with
every checkpoint (resume, fine-tuning, DDP workers all rebuild from it). ``scope="nam"`` covers NAM's gamma and
lambda; ``scope="all"`` also every BatchNorm2d weight of the model (network slimming).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn as nn

from ..modules import NAM

__all__ = [
    "ENV_PENALTY",
    "ENV_SCOPE",
    "SCOPES",
    "PenaltySetting",
    "check_penalty",
    "check_scope",
    "penalized_parameters",
    "resolve_settings",
    "set_nam_penalty",
    "add_penalty_grad",
    "unwrap",
]

ENV_PENALTY, ENV_SCOPE = "YOLO_ATTN_NAM_PENALTY", "YOLO_ATTN_NAM_PENALTY_SCOPE"  # set by `yolo-attn train nam_penalty=`
SCOPES = ("nam", "all")


def unwrap(model: nn.Module) -> nn.Module:
    """Return the bare model under DDP/DataParallel.

    Args:
        model (nn.Module): A model, possibly wrapped.

    Returns:
        (nn.Module): The model itself.
    """
    return model.module if hasattr(model, "module") else model


def check_penalty(value: Any) -> float:
    """Return ``value`` as a float penalty ``p >= 0``, or raise a ValueError that says what is accepted.

    Args:
        value (Any): The penalty, e.g. ``1e-4`` or ``"1e-4"``.

    Returns:
        (float): The penalty.
    """
    try:
        p = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        p = math.nan
    if not (math.isfinite(p) and p >= 0):
        raise ValueError(f"nam_penalty must be a finite number >= 0 (the paper uses 1e-4), got {value!r}")
    return p


def check_scope(value: Any) -> str:
    """Return the penalty scope, or raise a ValueError listing the accepted ones.

    Args:
        value (Any): ``"nam"`` or ``"all"``.

    Returns:
        (str): The scope.
    """
    if value not in SCOPES:
        raise ValueError(f"nam_penalty_scope must be one of {SCOPES}, got {value!r}")
    return value


class PenaltySetting:
    """An ``on_pretrain_routine_end`` callback that writes the penalty into the trainer's model YAML.

    Needed because Ultralytics rebuilds a YAML-defined model from the file when training starts; being a plain
    module-level class, it pickles into DDP workers with the trainer's callbacks.
    """

    def __init__(self, p: float, scope: str):
        """Store a validated setting.

        Args:
            p (float): Penalty weight.
            scope (str): Penalty scope.
        """
        self.p, self.scope = check_penalty(p), check_scope(scope)

    def __call__(self, trainer: Any) -> None:
        """Write the setting into the model YAML the trainer will train (and save)."""
        net = unwrap(trainer.model)
        net.yaml["nam_penalty"], net.yaml["nam_penalty_scope"] = self.p, self.scope


def set_nam_penalty(model: Any, p: float, scope: str = "nam") -> Any:
    """Turn NAM's L1 sparsity penalty on (or off with ``p=0``) for a YOLO model; it is saved with its checkpoints.

    Args:
        model (ultralytics.YOLO | nn.Module): The model; the setting goes into its YAML dict (and, for a ``YOLO``,
            into the next training run through a callback).
        p (float): Penalty weight, >= 0 (paper: 1e-4).
        scope (str): ``"nam"`` (NAM's gamma and lambda) or ``"all"`` (every BatchNorm2d weight too).

    Returns:
        (Any): ``model``, for chaining.
    """
    setting = PenaltySetting(p, scope)
    net = getattr(model, "model", model)
    if not isinstance(getattr(net, "yaml", None), dict):
        raise TypeError("set_nam_penalty needs a YOLO model built from a YAML or loaded from a checkpoint")
    net.yaml["nam_penalty"], net.yaml["nam_penalty_scope"] = setting.p, setting.scope
    if hasattr(model, "callbacks") and hasattr(model, "add_callback"):
        handlers = model.callbacks["on_pretrain_routine_end"]
        handlers[:] = [h for h in handlers if not isinstance(h, PenaltySetting)]  # the last call wins
        model.add_callback("on_pretrain_routine_end", setting)
    return model


def resolve_settings(yaml: dict) -> tuple[float, str]:
    """Return the effective ``(p, scope)``: ``yolo-attn`` CLI options (environment) over the model YAML.

    Args:
        yaml (dict): The model's YAML dict.

    Returns:
        (tuple[float, str]): Penalty and scope; p is 0.0 when unset.
    """
    p = os.environ.get(ENV_PENALTY, yaml.get("nam_penalty", 0.0))
    scope = os.environ.get(ENV_SCOPE, yaml.get("nam_penalty_scope", "nam"))
    return check_penalty(p), check_scope(scope)


def penalized_parameters(model: nn.Module, scope: str = "nam") -> list[nn.Parameter]:
    """Return the scale factors the penalty acts on, each once.

    Args:
        model (nn.Module): The network.
        scope (str): ``"nam"`` or ``"all"``.

    Returns:
        (list[nn.Parameter]): NAM gammas/lambdas, plus every BatchNorm2d weight when ``scope == "all"``.
    """
    params = [p for m in model.modules() if isinstance(m, NAM) for p in m.scale_factors()]
    if check_scope(scope) == "all":
        params += [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]
    unique = {id(p): p for p in params if p.requires_grad}
    return list(unique.values())


@torch.no_grad()
def add_penalty_grad(params: list[nn.Parameter], p: float, scale: float | torch.Tensor = 1.0) -> None:
    """Add ``p * scale * sign(w)`` to each parameter's gradient (parameters without a gradient are skipped).

    Args:
        params (list[nn.Parameter]): Scale factors.
        p (float): Penalty weight.
        scale (float | torch.Tensor): Current AMP loss scale (1.0 without AMP).
    """
    pairs = [(w, w.grad) for w in params if w.grad is not None]
    if not pairs or p == 0:
        return
    weights, grads = zip(*pairs)
    signs = torch._foreach_sign(weights)  # one fused kernel per device/dtype group
    if isinstance(scale, torch.Tensor):
        torch._foreach_mul_(signs, scale.to(signs[0].device))  # no host sync on the AMP scale
        scale = 1.0
    torch._foreach_add_(grads, signs, alpha=p * float(scale))
