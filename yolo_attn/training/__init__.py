"""Training helpers: the L1 sparsity penalty on scale factors (``nam_penalty``: callbacks, optimizer hook, API) and
the channel-saliency report."""

from .callbacks import callbacks
from .penalty import (
    L1Subgradient,
    check_penalty,
    check_scope,
    penalized_parameters,
    resolve_setting,
    set_nam_penalty,
    store_setting,
)
from .saliency import SPARSITY_THRESHOLD, format_saliency, nam_saliency

__all__ = [
    "SPARSITY_THRESHOLD",
    "L1Subgradient",
    "callbacks",
    "check_penalty",
    "check_scope",
    "format_saliency",
    "nam_saliency",
    "penalized_parameters",
    "resolve_setting",
    "set_nam_penalty",
    "store_setting",
]
