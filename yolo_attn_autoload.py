"""Start-up hook: register the yolo-attn blocks when Ultralytics' model parser is first imported.

The kit installs ``yolo_attn_autoload.pth`` next to it in site-packages; the interpreter imports this module at
start-up. All it does then is put a finder first on ``sys.meta_path``: it imports nothing (no torch, no Ultralytics,
no ``yolo_attn``) and ignores every import outside the ``ultralytics`` package. Once ``ultralytics.nn.tasks`` is
loaded and the import chain that brought it in has finished (so no Ultralytics module is half-initialised), the
finder removes itself and runs ``import yolo_attn``, which registers the blocks. The stock ``yolo`` command and
``from ultralytics import YOLO`` then accept kit model YAMLs, with no flag and no import in user code.

Environment (read at start-up):
    YOLO_ATTN_AUTOLOAD=0       the hook does nothing: Ultralytics stays stock unless you ``import yolo_attn``.
    YOLO_ATTN_AUTOREGISTER=0   ``import yolo_attn`` does not register, so neither does the hook.

If the kit cannot be loaded (an unsupported Ultralytics release, a broken install), the hook warns once with the
cause and Ultralytics keeps working; model YAML rows naming kit blocks then fail with the parser's own ``KeyError``.
"""

import os
import sys
from _thread import _local  # built in and already loaded: importing ``threading`` would cost start-up time

__all__ = ["ENV", "AutoloadFinder", "install", "uninstall"]

ENV = "YOLO_ATTN_AUTOLOAD"
_PACKAGE = "ultralytics"
_TRIGGER = "ultralytics.nn.tasks"  # the module whose namespace the parser resolves YAML rows in

_finder = None  # the installed AutoloadFinder, if any


class AutoloadFinder:
    """Meta-path finder that loads yolo-attn after the import that brought in ``ultralytics.nn.tasks`` has finished.

    It finds nothing itself: for ``ultralytics`` modules it asks the finders behind it and wraps the loader's
    ``exec_module`` to count how deeply Ultralytics module bodies are nested in the current thread. Registering at
    depth 0 keeps clear of circular imports: ``yolo_attn.register()`` imports ``ultralytics.engine.exporter`` and
    others, which may be the very modules still executing when ``ultralytics.nn.tasks`` completes.
    """

    def __init__(self) -> None:
        """Create the finder; ``install()`` puts it on ``sys.meta_path``."""
        self._depth = _local()  # per thread: another thread's imports do not delay or trigger this one
        self._patched = []  # loaders whose exec_module is wrapped, restored when the finder is removed

    def find_spec(self, name: str, path=None, target=None):
        """Return the spec the other finders give for an ``ultralytics`` module, its loader wrapped; else None.

        Args:
            name (str): Fully qualified module name.
            path (list[str], optional): The parent package's ``__path__``.
            target (types.ModuleType, optional): Module being reloaded.

        Returns:
            (importlib.machinery.ModuleSpec | None): The spec, or None to let the other finders answer.
        """
        if name != _PACKAGE and not name.startswith(_PACKAGE + "."):
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if finder is self or find is None else find(name, path, target)
            if spec is not None:
                self._wrap(spec.loader)
                return spec
        return None

    def _wrap(self, loader) -> None:
        """Wrap ``loader.exec_module`` on this loader instance only (its type and other modules stay untouched)."""
        attrs = getattr(loader, "__dict__", None)
        if attrs is None or isinstance(loader, type) or "exec_module" in attrs or not hasattr(loader, "exec_module"):
            return  # no per-module loader instance (None, built-ins, __slots__), already wrapped, or legacy
        original = loader.exec_module

        def exec_module(module) -> None:
            self._depth.n = getattr(self._depth, "n", 0) + 1
            try:
                original(module)
            finally:
                self._depth.n -= 1
            if self._depth.n == 0 and _TRIGGER in sys.modules:
                _fire()

        loader.exec_module = exec_module
        self._patched.append(loader)

    def restore(self) -> None:
        """Give every wrapped loader its own ``exec_module`` back."""
        for loader in self._patched:
            loader.__dict__.pop("exec_module", None)
        self._patched.clear()


def _fire() -> None:
    """Remove the hook, then import yolo-attn (which registers), warning instead of raising if that fails."""
    uninstall()
    if "yolo_attn" in sys.modules:
        return  # imported or being imported: that import registers the blocks (or was told not to)
    try:
        import yolo_attn  # noqa: F401 - registers the blocks
    except Exception as e:  # never make stock Ultralytics unusable because of the kit
        import warnings

        warnings.warn(
            "yolo-attn was not loaded with Ultralytics, so model YAMLs using the kit's blocks (yolo-attn list) "
            f"will not parse: {type(e).__name__}: {e}\nFix that, or set {ENV}=0 to stop loading "
            "yolo-attn with Ultralytics (then `import yolo_attn` where you want the blocks).",
            RuntimeWarning,
            stacklevel=2,
        )


def install() -> bool:
    """Put the finder first on ``sys.meta_path`` (the .pth file calls this at start-up through the import).

    Returns:
        (bool): True if installed now; False if switched off by ``YOLO_ATTN_AUTOLOAD=0``, already installed, or
            Ultralytics' parser is already imported (then ``import yolo_attn`` yourself).
    """
    global _finder
    if os.environ.get(ENV, "1") == "0" or _finder is not None or _TRIGGER in sys.modules:
        return False
    _finder = AutoloadFinder()
    sys.meta_path.insert(0, _finder)
    return True


def uninstall() -> None:
    """Remove the finder and unwrap the loaders it wrapped (idempotent)."""
    global _finder
    finder, _finder = _finder, None
    if finder is not None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        finder.restore()


install()
