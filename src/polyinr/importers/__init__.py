"""Other code bases' checkpoints → polyinr checkpoints, read without ever running code from the file.

- :mod:`~polyinr.importers.unpickle`: :func:`restricted_load` reads a pickle (``pickle`` / ``dill``, protocol
  ≥ 2) or a ``torch.save`` zip archive with an allow-list unpickler: tensors are rebuilt from their storages
  without executing code, every storage on the CPU; every other global becomes an inert :class:`StandIn`
  record, and a pickle that calls something dangerous is refused (:class:`UnsafePickleError`).
- :mod:`~polyinr.importers.stylegan_pickle`: readers of those records for the StyleGAN family's pickles
  (StyleGAN2-ADA, StyleGAN3, StyleGAN-XL, Poly-INR, INR-GAN): a pickled module's class, attributes and
  tensors (:func:`module_record`, :func:`module_tensors`, :func:`submodule_attrs`), numpy scalars and
  arrays (:func:`plain_number`, :func:`plain_array`), and :func:`inert_tree`, which turns a whole loaded
  pickle into plain dicts / lists / numbers / CPU tensors with each object of a foreign class (persistent
  classes included, their ``module_src`` never read) as a :class:`PickledObject` (module, class name, state).
- :mod:`~polyinr.importers.registry`: ``@register_converter("name", help=..., aliases=...)`` on a function
  ``convert(path: Path, **options) -> Generator | Converted``; :func:`convert_checkpoint` runs one and writes
  the checkpoint (``polyinr convert --from NAME IN OUT``).
- one module per source format: :mod:`~polyinr.importers.poly_inr` (``poly-inr``, alias
  ``poly-inr-official``), :mod:`~polyinr.importers.inr_gan` (``inr-gan``, the INR-GAN authors' pickles),
  :mod:`~polyinr.importers.stylegan3` (``stylegan3``, NVIDIA's pickles), :mod:`~polyinr.importers.stylegan2`
  (``stylegan2``, NVIDIA's StyleGAN2-ADA and ``--cfg=stylegan2`` pickles), :mod:`~polyinr.importers.stylegan_xl`
  (``stylegan-xl``, the StyleGAN-XL authors' pickles), :mod:`~polyinr.importers.infinity_gan` (``infinitygan``,
  the InfinityGAN authors' ``*.pth.tar``).

Adding a format is one module ``importers/<model>.py``: read the file with :func:`restricted_load` (a pickle of
live modules: :func:`module_tensors` / :func:`inert_tree`; a ``torch.save`` state dict comes back as a dict
of tensors), map the names to our model's ``state_dict``, check every shape, build the generator with
``polyinr.models.create``, and decorate ``convert`` with ``@register_converter``; then import the module
below so it registers.
"""

# Converters, one module per source format: importing a module registers its converter.
from polyinr.importers import infinity_gan, inr_gan, poly_inr, stylegan2, stylegan3, stylegan_xl  # noqa: F401
from polyinr.importers.poly_inr import PolyINRReport, poly_inr_from_snapshot
from polyinr.importers.registry import (
    Conversion,
    Converted,
    Converter,
    convert_checkpoint,
    converter_names,
    get_converter,
    list_converters,
    register_converter,
)
from polyinr.importers.stylegan_pickle import (
    PickledObject,
    inert_tree,
    module_record,
    module_tensors,
    plain_array,
    plain_number,
    submodule_attrs,
)
from polyinr.importers.unpickle import ImporterError, StandIn, UnsafePickleError, describe, restricted_load

__all__ = [
    "Conversion",
    "Converted",
    "Converter",
    "ImporterError",
    "PickledObject",
    "PolyINRReport",
    "StandIn",
    "UnsafePickleError",
    "convert_checkpoint",
    "converter_names",
    "describe",
    "get_converter",
    "inert_tree",
    "list_converters",
    "module_record",
    "module_tensors",
    "plain_array",
    "plain_number",
    "poly_inr_from_snapshot",
    "register_converter",
    "restricted_load",
    "submodule_attrs",
]
