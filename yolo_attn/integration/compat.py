"""The supported-Ultralytics guard: the one place that knows which versions and parser shape the kit relies on."""

from __future__ import annotations

import inspect
import os
import re
import types

__all__ = ["SUPPORTED", "UnsupportedUltralyticsError", "check_ultralytics", "parse_version"]

# [min, max): keep in step with pyproject's ultralytics pin (tests/test_compat.py checks). Both ends are tested with
# scripts/version_matrix.py; 8.2.x and older were not, so they are refused.
SUPPORTED = ((8, 3, 0), (8, 5, 0))
_SPEC = f">={'.'.join(map(str, SUPPORTED[0]))},<{'.'.join(map(str, SUPPORTED[1]))}"
_PARSER_LOCALS = ("d", "ch", "i", "f", "n", "m", "args")  # parse_model locals the injector reads or relies on


class UnsupportedUltralyticsError(RuntimeError):
    """The installed Ultralytics is outside the supported range or its parser changed shape."""


def parse_version(version: str) -> tuple[int, int, int]:
    """Return the numeric (major, minor, patch) of a version string such as ``"8.4.190"`` or ``"8.4.1rc2"``.

    Args:
        version (str): Version string.

    Returns:
        (tuple[int, int, int]): The numeric release triple (missing parts are 0).
    """
    nums = [int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3]]
    return tuple(nums + [0] * (3 - len(nums)))  # type: ignore[return-value]


def check_ultralytics(tasks: types.ModuleType, version: str, dist: types.ModuleType | None = None) -> None:
    """Raise if the installed Ultralytics cannot host the injector.

    ``YOLO_ATTN_ALLOW_ANY_ULTRALYTICS=1`` skips the version range (not the shape checks), for users who want
    to try another release at their own risk.

    Args:
        tasks (types.ModuleType): ``ultralytics.nn.tasks``.
        version (str): ``ultralytics.__version__``.
        dist (types.ModuleType | None): ``ultralytics.utils.dist``; if given, it must still write DDP files with
            ``generate_ddp_file(trainer)`` (the hook that makes DDP workers register the blocks).

    Raises:
        UnsupportedUltralyticsError: Version out of range, ``parse_model`` no longer has the expected shape, or DDP
            files are no longer written by ``generate_ddp_file``.
    """
    installed = parse_version(version)
    fix = f"install a supported release with: pip install 'ultralytics{_SPEC}'"
    if not SUPPORTED[0] <= installed < SUPPORTED[1] and os.getenv("YOLO_ATTN_ALLOW_ANY_ULTRALYTICS", "") != "1":
        raise UnsupportedUltralyticsError(
            f"yolo-attn supports ultralytics{_SPEC}, but ultralytics {version} is installed; {fix} "
            "(or set YOLO_ATTN_ALLOW_ANY_ULTRALYTICS=1 to try anyway)."
        )
    fn = getattr(tasks, "parse_model", None)
    code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)
    missing = [] if code is None else [v for v in _PARSER_LOCALS if v not in code.co_varnames + code.co_cellvars]
    if code is None or missing or "globals" not in code.co_names:
        raise UnsupportedUltralyticsError(
            f"ultralytics {version}: ultralytics.nn.tasks.parse_model no longer has the shape yolo-attn relies on "
            f"(module lookup through globals(), locals {missing or list(_PARSER_LOCALS)}). Supported: "
            f"ultralytics{_SPEC}; {fix}."
        )
    ddp = getattr(dist, "generate_ddp_file", None) if dist is not None else None
    if dist is not None and (ddp is None or "trainer" not in inspect.signature(ddp).parameters):
        raise UnsupportedUltralyticsError(
            f"ultralytics {version}: ultralytics.utils.dist.generate_ddp_file(trainer) is gone or changed, so DDP "
            f"workers could not be made to register the blocks. Supported: ultralytics{_SPEC}; {fix}."
        )
