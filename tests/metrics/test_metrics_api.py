"""Metric names, dispatch and result files, end to end on tiny N with random detectors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from metrics_testlib import FieldGenerator, field_dataset

from polyinr.errors import PolyinrError
from polyinr.grid import Grid
from polyinr.image_io import quantize_rgb
from polyinr.metrics import (
    append_metric_result,
    classification_accuracy_score,
    compute_metric,
    find_run_dir,
    metric_detector,
    metric_goal,
    parse_metric,
    parse_metrics,
)
from polyinr.metrics.fid import frechet_distance
from polyinr.metrics.sampling import sample_labels
from polyinr.metrics.stats_cache import real_feature_stats
from polyinr.sampling import latents_from_seeds


@pytest.mark.parametrize(
    ("name", "kind", "num_gen", "extra"),
    [
        ("fid50k_full", "fid", 50000, {}),
        ("kid0.1k_full", "kid", 100, {}),
        ("is50k", "is", 50000, {}),
        ("pr50k3_full", "pr", 50000, {"nhood": 3}),
        ("pr0.2k5_full", "pr", 200, {"nhood": 5}),
        ("sfid10k_full", "sfid", 10000, {}),
        ("rfid2.5k_full", "rfid", 2500, {}),
        ("eqt50k_int", "eqt_int", 50000, {}),
        ("eqt50k_frac", "eqt_frac", 50000, {}),
        ("eqr50k", "eqr", 50000, {}),
        ("scaleinv_fid10k_S4", "scaleinv_fid", 10000, {"scale": 4}),
        ("scaleinv_box_fid10k_S2", "scaleinv_box_fid", 10000, {"scale": 2}),
        ("cas", "cas", 10000, {}),
        ("cas0.5k", "cas", 500, {}),
    ],
)
def test_metric_names_parse(name, kind, num_gen, extra):
    spec = parse_metric(name)
    assert (spec.kind, spec.num_gen) == (kind, num_gen)
    for key, value in extra.items():
        assert getattr(spec, key) == value


@pytest.mark.parametrize("bad", ["fid50k", "fid50kfull", "FID50k_full", "eqt50k", "scaleinv_fid10k", "fid_full"])
def test_unknown_metric_is_one_line_listing_valid_forms(bad):
    with pytest.raises(PolyinrError) as err:
        parse_metric(bad)
    message = str(err.value)
    assert repr(bad) in message and "fid{N}k_full" in message and "eqr{N}k" in message and "\n" not in message


def test_counts_must_be_whole_images():
    with pytest.raises(PolyinrError, match="whole positive number"):
        parse_metric("fid0.0005k_full")
    with pytest.raises(PolyinrError, match="scale must be at least 1"):
        parse_metric("scaleinv_fid1k_S0")


def test_parse_metrics_lists():
    assert parse_metrics("none") == [] and parse_metrics("") == []
    assert parse_metrics(" fid50k_full, kid50k_full,fid50k_full ") == ["fid50k_full", "kid50k_full"]
    with pytest.raises(PolyinrError, match="unknown metric 'bogus'"):
        parse_metrics("fid50k_full,bogus")


def _run(name, G, dataset, detectors, **kwargs):
    return compute_metric(name, G, dataset, batch_size=kwargs.pop("batch_size", 8), detectors=detectors, **kwargs)


def test_fid_equals_the_distance_between_the_detector_statistics(tiny_detectors):
    G, dataset = FieldGenerator(), field_dataset(40)
    fid = _run("fid0.024k_full", G, dataset, tiny_detectors)["fid0.024k_full"]
    detector = tiny_detectors["inception"]
    z = latents_from_seeds(range(24), G.z_dim)
    gen = detector(quantize_rgb(G.synthesis(G.mapping(z), Grid.frame(16))), ("pool",))["pool"].double().numpy()
    real = real_feature_stats(dataset, detector, "pool", use_cache=False)
    assert fid == pytest.approx(frechet_distance(gen.mean(0), np.cov(gen, rowvar=False), *real.mean_cov()), rel=1e-9)
    assert fid == pytest.approx(_run("fid0.024k_full", G, dataset, tiny_detectors, batch_size=5)["fid0.024k_full"])


def test_a_generator_of_the_data_distribution_beats_one_that_is_not(tiny_detectors):
    dataset = field_dataset(40)
    good = _run("fid0.04k_full", FieldGenerator(), dataset, tiny_detectors)["fid0.04k_full"]
    bad = _run("fid0.04k_full", FieldGenerator(max_cycles=0.2), dataset, tiny_detectors)["fid0.04k_full"]
    assert 0 < good < bad


def test_every_feature_metric_returns_its_keys(tiny_detectors):
    G, dataset = FieldGenerator(), field_dataset(32)
    results = {}
    for name in [
        "kid0.02k_full",
        "pr0.02k3_full",
        "is0.02k",
        "sfid0.02k_full",
        "rfid0.02k_full",
        "scaleinv_fid0.012k_S2",
        "fid0.02k_full",
    ]:
        results.update(_run(name, G, dataset, tiny_detectors))
    assert set(results) == {
        "kid0.02k_full",
        "pr0.02k3_full_precision",
        "pr0.02k3_full_recall",
        "is0.02k_mean",
        "is0.02k_std",
        "sfid0.02k_full",
        "rfid0.02k_full",
        "scaleinv_fid0.012k_S2",
        "fid0.02k_full",
    }
    assert all(np.isfinite(v) for v in results.values())
    assert 0 <= results["pr0.02k3_full_precision"] <= 1 and results["is0.02k_mean"] >= 1
    assert results["rfid0.02k_full"] != results["fid0.02k_full"]  # another detector


def test_metrics_without_real_data(tiny_detectors):
    G = FieldGenerator()
    assert set(_run("is0.01k", G, None, tiny_detectors)) == {"is0.01k_mean", "is0.01k_std"}
    assert _run("eqt0.004k_int", G, None, tiny_detectors)["eqt0.004k_int"] >= 100
    with pytest.raises(PolyinrError, match="compares with real images"):
        _run("fid0.01k_full", G, None, tiny_detectors)


def test_label_sampling_follows_the_dataset_or_is_uniform():
    dataset = field_dataset(40, num_classes=4)
    dataset.labels = np.array([0] * 30 + [1] * 10)
    counts = np.bincount(sample_labels(4, 4000, "dataset", dataset, 0), minlength=4)
    assert counts[2] == counts[3] == 0 and 2700 < counts[0] < 3300
    counts = np.bincount(sample_labels(4, 4000, "uniform", None, 0), minlength=4)
    assert counts.min() > 850
    assert sample_labels(0, 10, "dataset", None, 0) is None
    with pytest.raises(PolyinrError, match="no labelled dataset"):
        sample_labels(4, 10, "dataset", None, 0)
    with pytest.raises(PolyinrError, match="unknown label sampling"):
        sample_labels(4, 10, "balanced", dataset, 0)


def test_cas_recognises_class_conditional_samples():
    dataset = field_dataset(60, num_classes=3)
    scores = classification_accuracy_score(FieldGenerator(num_classes=3), dataset, 30, image_size=8)
    assert scores["cas_real"] > 0.8 and scores["cas"] > 0.8
    class_blind = FieldGenerator(num_classes=3, ignore_class=True)  # renders class 0 whatever it is asked for
    blind = classification_accuracy_score(class_blind, dataset, 30, image_size=8)
    assert blind["cas"] < 0.5
    assert set(compute_metric("cas0.03k", FieldGenerator(num_classes=3), dataset)) == {"cas0.03k", "cas0.03k_real"}
    with pytest.raises(PolyinrError, match="class-conditional generator"):
        classification_accuracy_score(FieldGenerator(), dataset, 10)


def test_results_are_appended_as_json_lines(tmp_path):
    path = append_metric_result(tmp_path, "fid50k_full", {"fid50k_full": 12.5}, "network-snapshot-000100")
    append_metric_result(tmp_path, "fid50k_full", {"fid50k_full": 11.0}, "network-snapshot-000200", "tiny")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.name == "metric-fid50k_full.jsonl" and len(lines) == 2
    assert lines[0]["results"] == {"fid50k_full": 12.5} and lines[0]["snapshot"] == "network-snapshot-000100"
    assert "inception" in lines[0]["detector"] and lines[1]["detector"] == "tiny"
    assert {"metric", "timestamp", "polyinr_version"} <= set(lines[0])


def test_run_directory_is_found_by_its_files(tmp_path):
    run = tmp_path / "run"
    (run / "network-snapshot-000100").mkdir(parents=True)
    (run / "checkpoints" / "000060").mkdir(parents=True)
    assert find_run_dir(run / "network-snapshot-000100") is None
    (run / "training_options.json").write_text("{}")
    assert find_run_dir(run / "network-snapshot-000100") == run.resolve()
    assert find_run_dir(run / "checkpoints" / "000060") == run.resolve()
    assert find_run_dir(tmp_path / "elsewhere" / "net") is None


def test_metric_detector_names_the_network():
    assert metric_detector("eqr50k") == "none" and metric_detector("cas") == "none"
    assert "random" in metric_detector("rfid50k_full")
    assert "not yet downloaded" in metric_detector("fid50k_full")
    assert "vgg16" in metric_detector("pr50k3_full")


def test_metric_goal_ranks_by_a_stated_direction_or_not_at_all():
    assert metric_goal("fid50k_full") == ("fid50k_full", True) and metric_goal("kid_digits") == ("kid_digits", True)
    assert metric_goal("scaleinv_fid10k_S2") == ("scaleinv_fid10k_S2", True)
    assert metric_goal("is50k") == ("is50k_mean", False) and metric_goal("eqt50k_int") == ("eqt50k_int", False)
    assert metric_goal("cas_digits") == ("cas_digits", False)
    assert metric_goal("pr50k3_full") is None and metric_goal("div_digits") is None
