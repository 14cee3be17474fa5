"""Tiny randomly initialised Poly-INR generators, shared by every test folder (``G``, ``G_cond``, ``ws``).

``tests/`` mirrors ``src/polyinr/``:

- ``tests/<package>/`` holds the tests of ``src/polyinr/<package>/`` (``models/``, ``importers/``,
  ``discriminators/``, ``data/``, ``training/``, ``metrics/``, ``tools/``, ``serve/``, ``cli/``);
- ``tests/test_<module>*.py`` at the top holds the tests of a top-level module ``src/polyinr/<module>.py``
  (``test_grid.py``, ``test_atomic.py``, ``test_image_io.py``, ``test_sampling.py``, ``test_checkpoint*.py``),
  beside the tests that span the whole package (``test_import_graph.py``, ``test_error_messages.py``,
  ``test_careless_values.py``);
- ``tests/contract/`` runs the generator contract over every registered model.

A command's tests sit with the library package it drives when they share its fixtures
(``tools/test_tools_cli.py``, ``metrics/test_metrics_cli.py``, ``importers/``' ``convert`` tests), and in
``tests/cli/`` otherwise. Test file names are unique across folders (the folders are not packages).
"""

from __future__ import annotations

import pytest
import torch

from tiny_poly_inr import tiny_poly_inr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``cuda``-marked tests on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("polyinr-cache"))


@pytest.fixture(autouse=True)
def isolated_user_cache(session_cache_dir, monkeypatch) -> None:
    """No test writes into the user's cache (feature spaces, dataset statistics): one temporary cache per run,
    shared by the tests so a feature space is trained once (folders may isolate further)."""
    monkeypatch.setenv("POLYINR_CACHE_DIR", session_cache_dir)


@pytest.fixture
def one_thread():
    """Tiny networks run many times faster on one thread (no OpenMP hand-offs), above all on a busy machine.
    Test modules of tiny networks use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def make_generator():
    """``make_generator(seed=0, **overrides)``: a fresh tiny generator (see ``tiny_poly_inr.py``)."""
    return tiny_poly_inr


@pytest.fixture(scope="module")
def G():
    """Unconditional tiny generator."""
    return tiny_poly_inr()


@pytest.fixture(scope="module")
def G_cond():
    """Class-conditional tiny generator (3 classes) with distinct per-class ``w_avg`` rows."""
    G = tiny_poly_inr(seed=1, num_classes=3)
    G.mapping.w_avg.copy_(torch.randn_like(G.mapping.w_avg))
    return G


@pytest.fixture(scope="module")
def ws(G) -> torch.Tensor:
    """``ws [3, num_ws, w_dim]`` of the unconditional generator."""
    return G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(5)))
