"""python -m mer_uq.data: the JSON summary on the bundled data, the text form, and a bad
folder reported as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mer_uq.data.__main__ import main
from mer_uq.schema import DIMENSIONS, SPLITS

FAST = ["--repeats", "20", "--boot", "50"]


@pytest.fixture(scope="module")
def summary() -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "mer_uq.data", "--json", *FAST],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout)


def test_json_summary_on_bundled_data(summary: dict):
    assert summary["n_songs"] == 1744
    assert summary["years"] == {"2013": 744, "2014": 1000}
    assert summary["splits"] == {"train": 1219, "valid": 264, "test": 261}
    assert set(summary["splits"]) == set(SPLITS)
    assert summary["raters"]["songs_by_rater_count"] == {"10": 1738, "11": 4, "20": 2}
    swap = summary["swap"]
    assert swap["detected"] is True and swap["subset"] == "2013" and swap["corrected"] is True
    assert swap["correlations"]["2013"]["static_valence~dynamic_arousal"] > 0.9
    for dim in DIMENSIONS:
        for stat in ("mean", "sd"):
            est = summary["reliability"][dim][stat]
            assert est["ci_low"] <= est["reliability"] <= est["ci_high"]
    assert summary["averaged_check"]["best_ddof"] == 0
    genre_total = sum(sum(row.values()) for row in summary["genres_by_split"].values())
    assert genre_total == 1744


def test_text_summary(capsys):
    assert main(["--no-fix-swap", *FAST]) == 0
    text = capsys.readouterr().out
    assert "songs: 1744" in text
    assert "detected=True subset=2013 corrected=False" in text
    assert "reliability" in text and "ceiling" in text


def test_bad_folder_is_one_line(tmp_path: Path, capsys):
    assert main(["--deam", str(tmp_path / "missing"), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: DEAM folder not found:") and "\n" not in err
