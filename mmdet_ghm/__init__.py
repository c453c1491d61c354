"""mmdet-ghm: GHM-C, GHM-R, focal and class-balanced focal losses for MMDetection 3.x.

Importing the package registers its modules in mmdet's ``MODELS`` registry.
"""
from . import dense_heads, evaluation, hooks, losses  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
