"""Generators. Importing this package registers every model (explicit imports, no star-imports)."""

from polyinr.models import infinity_gan, inr_gan, poly_inr, stylegan2, stylegan3, stylegan_xl
from polyinr.models.generator import Generator
from polyinr.models.registry import create, list_models

__all__ = [
    "Generator",
    "create",
    "infinity_gan",
    "inr_gan",
    "list_models",
    "poly_inr",
    "stylegan2",
    "stylegan3",
    "stylegan_xl",
]
