"""Built-in datasets that need no download (see ``yolo_attn.data.digits``)."""

from .digits import default_data_dir, digits_yaml, make_digits_dataset

__all__ = ["make_digits_dataset", "digits_yaml", "default_data_dir"]
