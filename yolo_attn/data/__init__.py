"""Built-in datasets that need no download (see ``yolo_attn.data.digits``) and their training presets."""

from .digits import DATASETS, default_data_dir, digits_yaml, make_digits_dataset
from .presets import PRESETS, TrainPreset, get_preset, preset_yaml

__all__ = [
    "DATASETS",
    "PRESETS",
    "TrainPreset",
    "default_data_dir",
    "digits_yaml",
    "get_preset",
    "make_digits_dataset",
    "preset_yaml",
]
