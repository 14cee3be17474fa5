"""Real-data statistics: computed once, cached in the user cache by content, detector, count and mirror."""

from __future__ import annotations

import logging

import pytest
import torch
from metrics_testlib import TinyDetector, field_dataset

from polyinr.metrics.fid import FeatureStats
from polyinr.metrics.stats_cache import real_feature_stats, stats_key, stats_path


def compute(dataset, detector, **kwargs):
    return real_feature_stats(dataset, detector, "pool", batch_size=8, **kwargs)


def test_miss_then_hit_reads_no_image_twice(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset, detector = field_dataset(20), TinyDetector()
    first = compute(dataset, detector, capture_all=True)
    assert dataset.reads == 20
    files = list((isolated_cache / "gan-metrics").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    assert {p.name for p in tmp_path.iterdir()} == {"cache"}  # nothing written to the working directory
    second = compute(dataset, detector, capture_all=True)
    assert dataset.reads == 20  # a cache hit reads no image
    torch.testing.assert_close(second.all_features(), first.all_features())
    for a, b in zip(first.mean_cov(), second.mean_cov()):
        assert (a == b).all()


def test_key_separates_detector_count_mirror_and_what_is_kept():
    dataset = field_dataset(12)
    base = stats_key(dataset, TinyDetector("a"), "pool", 12, False)
    others = [
        stats_key(dataset, TinyDetector("b"), "pool", 12, False),
        stats_key(dataset, TinyDetector("a"), "logits", 12, False),
        stats_key(dataset, TinyDetector("a"), "pool", 10, False),
        stats_key(dataset, TinyDetector("a"), "pool", 12, True),
        stats_key(field_dataset(12, seed=5), TinyDetector("a"), "pool", 12, False),
    ]
    dataset.mirror = True
    others.append(stats_key(dataset, TinyDetector("a"), "pool", 12, False))
    paths = {stats_path(k) for k in [base, *others]}
    assert len(paths) == 1 + len(others)


def test_capped_count_uses_a_fixed_subset_and_its_own_entry(isolated_cache):
    dataset, detector = field_dataset(30), TinyDetector()
    capped = compute(dataset, detector, max_items=10)
    assert capped.num_items == 10
    assert compute(dataset, detector, max_items=10).raw_sum.equal(capped.raw_sum)
    assert compute(dataset, detector).num_items == 30
    assert len(list((isolated_cache / "gan-metrics").iterdir())) == 2


def test_moments_only_entry_is_not_used_for_all_features(isolated_cache):
    dataset, detector = field_dataset(16), TinyDetector()
    compute(dataset, detector)
    reads = dataset.reads
    full = compute(dataset, detector, capture_all=True)
    assert dataset.reads == 2 * reads and full.all_features().shape == (16, 12)


def test_corrupt_cache_file_is_recomputed_with_a_warning(isolated_cache, caplog):
    dataset, detector = field_dataset(8), TinyDetector()
    first = compute(dataset, detector)
    (path,) = (isolated_cache / "gan-metrics").iterdir()
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="polyinr"):
        again = compute(dataset, detector)
    assert "unreadable cache file" in caplog.text
    assert again.raw_sum.equal(first.raw_sum)


def test_no_cache_leaves_no_file(isolated_cache):
    stats = compute(field_dataset(8), TinyDetector(), use_cache=False)
    assert isinstance(stats, FeatureStats) and stats.num_items == 8
    assert not (isolated_cache / "gan-metrics").exists()


def test_cache_dir_follows_xdg_when_polyinr_cache_dir_is_unset(monkeypatch, tmp_path):
    from polyinr.metrics.features import cache_dir

    monkeypatch.delenv("POLYINR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "polyinr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir().parts[-2:] == (".cache", "polyinr")


@pytest.mark.parametrize("batch_size", [3, 16])
def test_statistics_do_not_depend_on_the_batch_size(batch_size):
    dataset, detector = field_dataset(16), TinyDetector()
    reference = real_feature_stats(dataset, detector, "pool", batch_size=5, use_cache=False)
    stats = real_feature_stats(dataset, detector, "pool", batch_size=batch_size, use_cache=False)
    torch.testing.assert_close(stats.raw_sum, reference.raw_sum)
