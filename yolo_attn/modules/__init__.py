"""The attention blocks: plain ``nn.Module`` classes with the constructor contract ``Block(c1, *yaml_args)``."""

from .das import DAS
from .nam import NAM
from .se import SE
from .simam import SimAM

__all__ = ["DAS", "NAM", "SE", "SimAM"]
