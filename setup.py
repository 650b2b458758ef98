"""Build step the declarative config cannot express: install ``yolo_attn_autoload.pth`` at the site-packages root.

All metadata lives in pyproject.toml. The .pth file makes the interpreter import the tiny ``yolo_attn_autoload``
module at start-up, which registers the kit with Ultralytics when Ultralytics is first used (see that module).
setuptools has no option for root-level files, so ``build_py`` writes it: into the build directory for a wheel, and
into the editable wheel itself for ``pip install -e`` (PEP 660 editable builds discard extra build-directory files).
Being a file of the wheel, it is listed in RECORD and removed by ``pip uninstall``.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

__all__ = ["PTH_NAME", "PTH_LINE", "BuildPyWithPth"]

PTH_NAME = "yolo_attn_autoload.pth"
# One line, run by site.py for every interpreter start: it must stay cheap and silent. The ImportError guard keeps a
# stale editable install (checkout moved away) from printing an error on every start-up.
PTH_LINE = 'import sys; exec("try:\\n import yolo_attn_autoload\\nexcept ImportError:\\n pass")\n'


class BuildPyWithPth(build_py):
    """``build_py`` that also writes the start-up .pth file next to the top-level modules."""

    def run(self) -> None:
        """Build the modules, then write the .pth file where this build's top-level files go."""
        super().run()
        # editable_wheel points the install directory at the unpacked editable wheel; build_lib is discarded there
        target = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, PTH_NAME), "w", encoding="utf-8") as f:
            f.write(PTH_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        """Return the built files, the .pth file included (for ``install --record``).

        Args:
            include_bytecode (bool): Include compiled ``.pyc`` files.

        Returns:
            (list[str]): Paths under the build directory.
        """
        extra = [] if self.editable_mode else [os.path.join(self.build_lib, PTH_NAME)]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithPth})
