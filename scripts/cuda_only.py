"""pytest plugin: keep only the CUDA-only tests, those with a ``skipif`` mark whose reason names CUDA.

Used by ``scripts/gpu_checks.sh`` (``python -m pytest -p cuda_only`` with ``scripts/`` on ``PYTHONPATH``), so a new
CUDA-only test is picked up by writing ``@pytest.mark.skipif(not torch.cuda.is_available(), reason="... CUDA ...")``,
on the test, its parameter or its module (``pytestmark``), and nothing else.
"""

from __future__ import annotations

import pytest

__all__ = ["is_cuda_only", "pytest_collection_modifyitems"]


def is_cuda_only(item: pytest.Item) -> bool:
    """Return whether a collected test carries a ``skipif`` mark whose reason mentions CUDA."""
    return any("cuda" in str(m.kwargs.get("reason", "")).lower() for m in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect every test that is not CUDA-only."""
    keep = [i for i in items if is_cuda_only(i)]
    dropped = [i for i in items if not is_cuda_only(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
