"""Training helpers: NAM's L1 sparsity penalty (callbacks + API) and the channel-saliency report."""

from .callbacks import callbacks
from .penalty import check_penalty, check_scope, penalized_parameters, set_nam_penalty
from .saliency import SPARSITY_THRESHOLD, format_saliency, nam_saliency

__all__ = [
    "SPARSITY_THRESHOLD",
    "callbacks",
    "check_penalty",
    "check_scope",
    "format_saliency",
    "nam_saliency",
    "penalized_parameters",
    "set_nam_penalty",
]
