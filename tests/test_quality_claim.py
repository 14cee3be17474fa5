"""benchmarks/claims/quality.py gathers the published comparisons' reports into the quality claim's table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "claims" / "quality.py"
PUBLISHED = ROOT / "benchmarks" / "compare"


def test_the_table_holds_every_seed_of_the_published_reports(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    results = json.loads((tmp_path / "results.json").read_text())
    seeds = json.loads((PUBLISHED / "digits16-seeds" / "report.json").read_text())["models"]
    once = json.loads((PUBLISHED / "faces16" / "report.json").read_text())["models"]
    digits, faces = results["values"]["digits 16²"]["fid_digits"], results["values"]["faces 16²"]["fid_faces"]
    assert digits["poly-inr"] == [seeds["poly-inr"]["fid_digits"]["per_seed"][s] for s in ("0", "1")]
    assert faces["stylegan-xl"] == [once["stylegan-xl"]["fid_faces"]["value"]]  # trained once: its one value
    table = (tmp_path / "table.md").read_text()
    assert f"| digits 16²: FID | {min(digits['poly-inr']):.2f}–{max(digits['poly-inr']):.2f} (2 seeds) |" in table
    assert (tmp_path / "figure.png").stat().st_size > 0


def test_a_lead_is_bold_only_when_every_seed_holds_it():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import quality
    finally:
        sys.path.remove(str(SCRIPT.parent))
    fid, cas = quality.FID["digits"], quality.CAS
    assert quality.clear_lead({"a": [5.0], "b": [6.0, 7.0]}, fid) == "a"
    assert quality.clear_lead({"a": [5.0, 6.5], "b": [6.0, 7.0]}, fid) is None  # the ranges overlap
    assert quality.clear_lead({"a": [0.95, 0.92], "b": [0.90]}, cas) == "a"  # higher is better
    assert quality.clear_lead({"a": [5.0]}, fid) is None  # nothing to lead
