"""Fixtures of the metrics tests.

Every test runs with ``$POLYINR_CACHE_DIR`` and ``$TORCH_HOME`` pointed at a temporary directory, so no test
reads or writes the user's caches and no standard detector weights are found (downloads are turned off).
"""

from __future__ import annotations

import pytest
from metrics_testlib import TinyDetector

from polyinr.metrics import features


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYINR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(features, "_LOADED", {})  # detectors loaded by earlier tests stay out
    return tmp_path / "cache"


@pytest.fixture
def tiny_detectors():
    return {
        "inception": TinyDetector("tiny-a"),
        "inception-random": TinyDetector("tiny-b", seed=1),
        "vgg16": TinyDetector("tiny-c", seed=2),
    }
