"""L1 sparsity penalty on normalisation scale factors (NAM's penalty, network slimming), as an exact subgradient.

The NAM paper adds ``p * sum|gamma| + p * sum|lambda|`` to the loss; the authors (network-slimming style) add the
subgradient ``p * sign(gamma)`` to the gradients after backward and before the optimizer step. :class:`L1Subgradient`
does that as an optimizer *step pre-hook*, so it runs inside ``optimizer.step()`` itself, after everything a trainer
does to the gradients beforehand. In Ultralytics' ``optimizer_step`` (unscale, ``clip_grad_norm_(max_norm=10)``,
``scaler.step``) that means:

- each optimizer step adds exactly ``p * sign(gamma)``: the term is neither scaled down by gradient clipping nor
  counted towards the clipped norm, and the AMP loss scale has already been divided out (where a fused optimizer
  unscales inside its kernel, the hook adds the term pre-multiplied by the ``grad_scale`` it will divide by);
- gradient accumulation: the hook fires once per optimizer step, whatever ``accumulate`` is;
- AMP steps skipped for inf/NaN gradients skip the penalty too;
- DDP: gradients are all-reduced during backward and parameters are identical on every rank, so every rank adds
  the same term.

What it does to the scale factors depends on the optimizer. With SGD (momentum ``m``) each step moves gamma by
``lr * p`` towards 0, about ``lr * p / (1 - m)`` at steady state; Ultralytics puts BN weights in the no-weight-decay
group, so the penalty is their only shrinkage. Adam-type optimizers divide each parameter's step by the running RMS
of its own gradient: where ``p`` dominates the loss gradient of a gamma, the step is about ``lr`` whatever ``p`` is,
and where the loss gradient dominates, ``p`` barely matters. There ``p`` acts as a threshold on the loss gradient
(channels whose loss gradient stays below about ``p`` are driven to 0 at ``lr`` per step), not as a rate, and no
``p`` moves a gamma further than ``sum(lr_t)`` over the run: with ``optimizer=auto``'s AdamW rate (about 7e-4 for 10
classes), a few hundred steps cannot take a gamma of 1 below 0.5. Pick ``p`` for Adam-type optimizers against the size
of the gammas' loss gradients (``benchmarks/sparsity.py``), and give them a learning rate and a step count that can
cover the distance.

The setting lives in the model YAML (``nam_penalty``, ``nam_penalty_scope``) so it travels with the config and with
every checkpoint (resume, fine-tuning, DDP workers all rebuild from it): :func:`store_setting` writes it,
:func:`resolve_setting` reads it (``yolo-attn`` CLI options, passed through the environment, over the YAML, over the
defaults). ``scope="nam"`` covers the attention blocks' own scale factors (``AttentionGate.scale_factors()``, e.g.
NAM's gamma and lambda); ``scope="all"`` also every BatchNorm2d weight of the model (network slimming).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from ..modules import AttentionGate

__all__ = [
    "DEFAULT_PENALTY",
    "DEFAULT_SCOPE",
    "ENV_PENALTY",
    "ENV_SCOPE",
    "SCOPES",
    "L1Subgradient",
    "PenaltySetting",
    "add_penalty_grad",
    "block_scale_factors",
    "check_penalty",
    "check_scope",
    "network",
    "penalized_parameters",
    "resolve_setting",
    "set_nam_penalty",
    "store_setting",
    "unwrap",
]

ENV_PENALTY, ENV_SCOPE = "YOLO_ATTN_NAM_PENALTY", "YOLO_ATTN_NAM_PENALTY_SCOPE"  # set by `yolo-attn train nam_penalty=`
SCOPES = ("nam", "all")
DEFAULT_PENALTY, DEFAULT_SCOPE = 0.0, "nam"
_KEYS = ("nam_penalty", "nam_penalty_scope")  # the model YAML keys


def unwrap(model: nn.Module) -> nn.Module:
    """Return the bare model under DDP/DataParallel.

    Args:
        model (nn.Module): A model, possibly wrapped.

    Returns:
        (nn.Module): The model itself.
    """
    return model.module if hasattr(model, "module") else model


def network(model: Any) -> Any:
    """Return the network inside an Ultralytics ``YOLO`` wrapper (the model with the ``yaml`` dict), else ``model``.

    Args:
        model (Any): A ``YOLO`` object, a YOLO network (``DetectionModel`` etc.) or any module.

    Returns:
        (Any): The network.
    """
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) and isinstance(getattr(inner, "yaml", None), dict) else model


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


def store_setting(model: nn.Module, p: Any, scope: Any = DEFAULT_SCOPE) -> tuple[float, str]:
    """Validate the penalty and write it into the model's YAML dict, where checkpoints carry it.

    The one place the setting is stored: ``set_nam_penalty``, the trainer callbacks and :class:`PenaltySetting` all
    call it.

    Args:
        model (nn.Module): A YOLO network (``DetectionModel`` etc., possibly DDP-wrapped) with a ``yaml`` dict.
        p (Any): Penalty weight, >= 0.
        scope (Any): ``"nam"`` or ``"all"``.

    Returns:
        (tuple[float, str]): The validated ``(p, scope)``.
    """
    p, scope = check_penalty(p), check_scope(scope)
    net = unwrap(model)
    if not isinstance(getattr(net, "yaml", None), dict):
        raise TypeError("the NAM penalty setting needs a YOLO model built from a YAML or loaded from a checkpoint, "
                        f"got {type(net).__name__} without a yaml dict")
    net.yaml.update(zip(_KEYS, (p, scope)))
    return p, scope


def resolve_setting(yaml: dict) -> tuple[float, str]:
    """Return the effective ``(p, scope)``: ``yolo-attn`` CLI options (environment) > model YAML > defaults.

    Args:
        yaml (dict): The model's YAML dict.

    Returns:
        (tuple[float, str]): Penalty and scope; ``(0.0, "nam")`` when nothing is set.
    """
    p = os.environ.get(ENV_PENALTY, yaml.get(_KEYS[0], DEFAULT_PENALTY))
    scope = os.environ.get(ENV_SCOPE, yaml.get(_KEYS[1], DEFAULT_SCOPE))
    return check_penalty(p), check_scope(scope)


class PenaltySetting:
    """An ``on_pretrain_routine_end`` callback that stores the setting in the model the trainer will train and save.

    Needed because Ultralytics rebuilds a YAML-defined model when training starts; being a plain module-level class,
    it pickles into DDP workers with the trainer's callbacks.
    """

    def __init__(self, p: float, scope: str):
        """Store a validated setting.

        Args:
            p (float): Penalty weight.
            scope (str): Penalty scope.
        """
        self.p, self.scope = check_penalty(p), check_scope(scope)

    def __call__(self, trainer: Any) -> None:
        """Write the setting into the trainer's model YAML."""
        store_setting(trainer.model, self.p, self.scope)


def set_nam_penalty(model: Any, p: float, scope: str = DEFAULT_SCOPE) -> Any:
    """Turn NAM's L1 sparsity penalty on (or off with ``p=0``) for a YOLO model; it is saved with its checkpoints.

    Args:
        model (ultralytics.YOLO | nn.Module): The model; the setting goes into its YAML dict (and, for a ``YOLO``,
            into the next training run through a callback).
        p (float): Penalty weight, >= 0 (paper: 1e-4).
        scope (str): ``"nam"`` (the attention blocks' scale factors, e.g. NAM's gamma and lambda) or ``"all"``
            (every BatchNorm2d weight too).

    Returns:
        (Any): ``model``, for chaining.
    """
    setting = PenaltySetting(p, scope)
    store_setting(network(model), setting.p, setting.scope)
    if hasattr(model, "callbacks") and hasattr(model, "add_callback"):
        handlers = model.callbacks["on_pretrain_routine_end"]
        handlers[:] = [h for h in handlers if not isinstance(h, PenaltySetting)]  # the last call wins
        model.add_callback("on_pretrain_routine_end", setting)
    return model


def block_scale_factors(model: nn.Module) -> list[nn.Parameter]:
    """Return the scale factors every attention block in ``model`` declares (``AttentionGate.scale_factors()``).

    Args:
        model (nn.Module): The network.

    Returns:
        (list[nn.Parameter]): The parameters, in module order (possibly with repeats for shared modules).
    """
    return [w for m in model.modules() if isinstance(m, AttentionGate) for w in m.scale_factors()]


def penalized_parameters(model: nn.Module, scope: str = DEFAULT_SCOPE) -> list[nn.Parameter]:
    """Return the trainable scale factors the penalty acts on, each once.

    Args:
        model (nn.Module): The network.
        scope (str): ``"nam"`` or ``"all"``.

    Returns:
        (list[nn.Parameter]): The blocks' scale factors, plus every BatchNorm2d weight when ``scope == "all"``.
    """
    params = block_scale_factors(model)
    if check_scope(scope) == "all":
        params += [m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]
    unique = {id(w): w for w in params if w.requires_grad}
    return list(unique.values())


@torch.no_grad()
def add_penalty_grad(params: list[nn.Parameter], p: float, scale: float | torch.Tensor = 1.0) -> None:
    """Add ``p * scale * sign(w)`` to each parameter's gradient (parameters without a gradient are skipped).

    Args:
        params (list[nn.Parameter]): Scale factors.
        p (float): Penalty weight.
        scale (float | torch.Tensor): Factor the gradients are still multiplied by (an AMP loss scale), else 1.0.
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


class L1Subgradient:
    """Optimizer step pre-hook that adds ``p * sign(w)`` to the gradients of ``params`` right before each step.

    Attributes:
        params (list[nn.Parameter]): Penalised scale factors.
        p (float): Penalty weight.
        steps (int): Optimizer steps the penalty was applied to.
        optimizer (torch.optim.Optimizer | None): The optimizer it is attached to.
    """

    def __init__(self, params: Iterable[nn.Parameter], p: float):
        """Create a detached hook.

        Args:
            params (Iterable[nn.Parameter]): Scale factors.
            p (float): Penalty weight, >= 0.
        """
        self.params, self.p, self.steps = list(params), check_penalty(p), 0
        self.optimizer: torch.optim.Optimizer | None = None
        self._handle: RemovableHandle | None = None

    def attach(self, optimizer: torch.optim.Optimizer) -> L1Subgradient:
        """Hook into ``optimizer`` (moving off any optimizer it was attached to before).

        Args:
            optimizer (torch.optim.Optimizer): The optimizer whose steps get the penalty.

        Returns:
            (L1Subgradient): This hook.
        """
        self.remove()
        self._handle, self.optimizer = optimizer.register_step_pre_hook(self), optimizer
        return self

    def remove(self) -> None:
        """Detach from the optimizer (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = self.optimizer = None

    def __call__(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        """Add the subgradient; called by ``optimizer.step()`` before it updates the parameters."""
        scale = getattr(optimizer, "grad_scale", None)  # set by GradScaler when a fused optimizer unscales itself
        add_penalty_grad(self.params, self.p, 1.0 if scale is None else scale)
        self.steps += 1
