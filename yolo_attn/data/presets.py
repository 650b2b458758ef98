"""Training presets for the built-in datasets: what a from-scratch YOLOv8n needs to learn them on a CPU or a GPU.

A preset pairs a built-in dataset (``yolo_attn.data.digits.DATASETS``) with the training settings that reach a
trained detector within the hardware's budget. The quick start and ``yolo-attn bench`` use them as their defaults:

- ``cpu``: the easy ``digits`` set at 128 px, 15 epochs; stock YOLOv8n from scratch reaches mAP50 0.89 / mAP50-95
  0.74 (seed 0) in about 2.5 minutes on 2 CPU cores.
- ``gpu``: the ``digits-hard`` set (all classes, small digits, cluttered backgrounds) at 320 px with a larger batch.

Two Ultralytics defaults hold a short from-scratch run back, so the presets set them explicitly:

- ``optimizer=auto`` picks AdamW with ``lr0 = 0.002 * 5 / (4 + nc)`` (0.0007 for 10 classes) for short runs, too
  timid for a model trained from scratch in a few hundred steps.
- ``nbs=64`` (nominal batch) accumulates gradients over ``64 / batch`` batches: at batch 16 the optimizer steps once
  per 4 batches. ``nbs=batch`` steps every batch, 4x the updates for the same compute (weight decay is scaled by
  ``batch * accumulate / nbs``, 1 either way). On ``digits``, stock YOLOv8n after 15 epochs: mAP50 0.63 /
  mAP50-95 0.48 with ``nbs=64 lr0=0.003``, 0.89 / 0.74 with ``nbs=16 lr0=0.002``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .digits import DATASETS, default_data_dir, digits_yaml

__all__ = ["PRESETS", "TrainPreset", "get_preset", "preset_yaml"]


@dataclass(frozen=True)
class TrainPreset:
    """A built-in dataset and the training settings that learn it within a hardware budget.

    Attributes:
        name (str): ``"cpu"`` or ``"gpu"``.
        dataset (str): Built-in dataset name, a key of ``DATASETS``; its data YAML is ``<dataset>.yaml``.
        imgsz (int): Training and validation image size.
        epochs (int): Epochs of one training run.
        batch (int): Batch size.
        optimizer (str): Ultralytics optimizer name.
        lr0 (float): Initial learning rate.
        extra (dict): Further Ultralytics training arguments.
        note (str): What the preset is for.
    """

    name: str
    dataset: str
    imgsz: int
    epochs: int
    batch: int
    optimizer: str
    lr0: float
    extra: dict = field(default_factory=dict)
    note: str = ""

    @property
    def data_args(self) -> dict:
        """Return the generator arguments of the preset's dataset (``digits_yaml(**data_args)``)."""
        return dict(DATASETS[self.dataset])

    def train_args(self) -> dict:
        """Return the Ultralytics training arguments of the preset, the dataset excluded.

        Returns:
            (dict): ``imgsz``, ``epochs``, ``batch``, ``optimizer``, ``lr0`` and ``extra``.
        """
        return {"imgsz": self.imgsz, "epochs": self.epochs, "batch": self.batch, "optimizer": self.optimizer,
                "lr0": self.lr0, **self.extra}

    def command(self, model: str = "yolov8n.yaml") -> str:
        """Return the ``yolo-attn train`` command line that trains ``model`` with this preset.

        Args:
            model (str): Model YAML or weights.

        Returns:
            (str): The command.
        """
        args = " ".join(f"{k}={v}" for k, v in self.train_args().items())
        return f"yolo-attn train model={model} data={self.dataset}.yaml {args}"


PRESETS: dict[str, TrainPreset] = {
    "cpu": TrainPreset("cpu", "digits", imgsz=128, epochs=15, batch=16, optimizer="AdamW", lr0=0.002,
                       extra={"nbs": 16}, note="2 CPU cores: one stock YOLOv8n run in about 2.5 minutes"),
    # Not yet measured on a GPU: epochs and batch are a starting point for 5 models x 3 seeds in about 10 minutes
    "gpu": TrainPreset("gpu", "digits-hard", imgsz=320, epochs=20, batch=64, optimizer="AdamW", lr0=0.003,
                       note="one modern GPU: the harder set at GPU scale"),
}


def get_preset(name: str) -> TrainPreset:
    """Return a preset by name.

    Args:
        name (str): ``"cpu"`` or ``"gpu"``.

    Returns:
        (TrainPreset): The preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(PRESETS)}") from None


def preset_yaml(preset: str | TrainPreset, root: str | Path | None = None) -> Path:
    """Return the data YAML of a preset's built-in dataset, generating it on first use.

    Args:
        preset (str | TrainPreset): The preset or its name.
        root (str | Path, optional): Dataset directory; defaults to ``default_data_dir() / preset.dataset``.

    Returns:
        (Path): Path of the data YAML.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    return digits_yaml(default_data_dir() / p.dataset if root is None else root, dataset=p.dataset)
