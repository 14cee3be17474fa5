"""``polyinr train``'s own words: the command line names the flags the library's messages leave out."""

from __future__ import annotations

import timm
from click.testing import CliRunner

from polyinr.cli import main


def test_offline_backbone_error_names_the_flags(monkeypatch, tmp_path):
    def offline(name, pretrained=False, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(timm, "create_model", offline)
    args = [
        "train",
        "--disc",
        "projected",
        "--loss",
        "hinge",
        "--data",
        "builtin:digits",
        "--resolution",
        "8",
        "--kimg",
        "0.008",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--outdir",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("Error: the pretrained weights of tf_efficientnet_lite0 could not be downloaded")
    assert result.output.rstrip().endswith(
        "(--features-pretrained false, or --features-weights tf_efficientnet_lite0=FILE)"
    )
