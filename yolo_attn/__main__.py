"""``python -m yolo_attn`` runs the ``yolo-attn`` command."""

from .cli import main

__all__: list[str] = []

main()
