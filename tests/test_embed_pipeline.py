"""``python -m sweep.embed`` end to end on Ray Data (local, the session's Ray instance):
generated audio in every supported shape plus a corrupt file, through the golden tiny
MusicFM, then a rerun that must only embed the new song."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mer_uq.audio import load_audio
from mer_uq.data.features import load_features
from mer_uq.musicfm import MusicFMConfig, embed_song, load_musicfm
from sweep.embed import EmbedError, EmbedOptions, main, run_embedding

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _tone(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    rows = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(rows, axis=1).astype(np.float32)  # soundfile layout [samples, channels]


@pytest.fixture(scope="module")
def golden_model(musicfm_fixtures: Path) -> dict[str, Path]:
    golden = musicfm_fixtures / "golden"
    return {"checkpoint": golden / "tiny_checkpoint.pt", "config": golden / "tiny_config.json",
            "stats": musicfm_fixtures / "msd_stats.json", "audio": golden / "audio_24k_stereo.wav",
            "expected": golden / "expected.npz"}


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory, golden_model: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("MEMD_audio")
    shutil.copy(golden_model["audio"], folder / "1.wav")  # 24 kHz, 45 s: passes unchanged
    sf.write(folder / "2.wav", _tone(3.0, 44_100), 44_100, subtype="FLOAT")
    sf.write(folder / "3.mp3", _tone(3.0, 44_100), 44_100, format="MP3",
             subtype="MPEG_LAYER_III")
    sf.write(folder / "4.flac", _tone(2.0, 24_000, channels=1), 24_000)  # mono
    sf.write(folder / "5.wav", _tone(0.5, 44_100), 44_100)  # short: padded to 45 s
    sf.write(folder / "6.wav", _tone(46.0, 8_000), 8_000)  # long: trimmed to 45 s
    (folder / "7.mp3").write_bytes(b"ID3 not really an mp3" * 50)  # corrupt
    (folder / "notes.txt").write_text("not audio, ignored")
    sf.write(folder / "intro.wav", _tone(0.5, 8_000), 8_000)  # no song id in the name
    return folder


@pytest.fixture(scope="module")
def first_run(ray_session, audio_dir: Path, golden_model: dict[str, Path],
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("features") / "musicfm.parquet"
    code = main(["--audio", str(audio_dir), "--checkpoint", str(golden_model["checkpoint"]),
                 "--stats", str(golden_model["stats"]), "--model-config",
                 str(golden_model["config"]), "--out", str(out), "--workers", "1",
                 "--batch-size", "2"])
    assert code == 0
    return out


def test_every_song_embedded_in_every_layer(first_run: Path) -> None:
    for layer in range(3):
        table = load_features(first_run, column=f"layer_{layer:02d}")
        assert table.song_ids.tolist() == [1, 2, 3, 4, 5, 6]
        assert table.matrix.shape == (6, 64)
    default = load_features(first_run)
    assert default.column == "layer_02"  # default layer 7 does not exist in a 2-layer model


def test_golden_song_written_as_reference(first_run: Path, golden_model) -> None:
    expected = np.load(golden_model["expected"])["pooled_per_layer"]
    for layer in range(3):
        written = load_features(first_run, column=f"layer_{layer:02d}").rows([1])[0]
        error = np.abs(written - expected[layer]).max() / np.abs(expected[layer]).max()
        assert error < 1e-4


def test_pipeline_equals_direct_embedding(first_run: Path, audio_dir: Path,
                                          golden_model) -> None:
    model = load_musicfm(golden_model["checkpoint"], golden_model["stats"],
                         MusicFMConfig.from_json(golden_model["config"]))
    for song_id, name in ((3, "3.mp3"), (4, "4.flac")):
        direct = embed_song(model, load_audio(audio_dir / name))
        for layer in range(3):
            written = load_features(first_run, column=f"layer_{layer:02d}").rows([song_id])[0]
            np.testing.assert_allclose(written, direct[layer], rtol=1e-5, atol=1e-6)


def test_errors_file_lists_bad_files(first_run: Path) -> None:
    lines = first_run.with_name("musicfm.errors.csv").read_text().splitlines()
    assert lines[0] == "song_id,path,error"
    assert len(lines) == 3
    assert any("7.mp3" in line and "AudioDecodeError" in line for line in lines)
    assert any("intro.wav" in line and "song id" in line for line in lines)


def test_provenance_metadata(first_run: Path, golden_model) -> None:
    meta = json.loads(load_features(first_run).metadata["mer_uq.musicfm"])
    sha = hashlib.sha256(golden_model["checkpoint"].read_bytes()).hexdigest()
    assert meta["checkpoint_sha256"] == sha
    assert meta["config"] == MusicFMConfig.from_json(golden_model["config"]).to_dict()
    assert meta["layers"] == [0, 1, 2]


def test_rerun_embeds_only_new_songs(first_run: Path, audio_dir: Path, golden_model) -> None:
    before = load_features(first_run, column="layer_01")
    sf.write(audio_dir / "8.wav", _tone(1.0, 44_100), 44_100)
    options = EmbedOptions(audio=audio_dir, checkpoint=golden_model["checkpoint"],
                           stats=golden_model["stats"], out=first_run,
                           model_config=golden_model["config"])
    summary = run_embedding(options)
    assert (summary.embedded, summary.skipped, len(summary.errors)) == (1, 6, 2)
    after = load_features(first_run, column="layer_01")
    assert after.song_ids.tolist() == [1, 2, 3, 4, 5, 6, 8]
    assert np.array_equal(after.rows(before.song_ids), before.matrix)  # untouched


def test_rerun_with_other_layers_refused(first_run: Path, audio_dir: Path,
                                         golden_model) -> None:
    options = EmbedOptions(audio=audio_dir, checkpoint=golden_model["checkpoint"],
                           stats=golden_model["stats"], out=first_run,
                           model_config=golden_model["config"], layers=(2,))
    with pytest.raises(EmbedError, match=r"(?s)musicfm\.parquet.*different layers"):
        run_embedding(options)


def test_bad_checkpoint_fails_before_ray(tmp_path: Path, audio_dir: Path,
                                         golden_model) -> None:
    code = main(["--audio", str(audio_dir), "--checkpoint", str(golden_model["checkpoint"]),
                 "--stats", str(golden_model["stats"]), "--out", str(tmp_path / "f.parquet")])
    assert code == 2  # tiny checkpoint without --model-config: shape mismatches
    assert not (tmp_path / "f.parquet").exists()


def test_written_table_feeds_sweep_run(ray_session, first_run: Path, tmp_path: Path) -> None:
    """The embed output, completed to every DEAM song through sweep.embed's own merge path
    (reading it back and rewriting it, as a rerun does), trains a one-step sweep."""
    from mer_uq.data import load_deam
    from sweep.embed_output import read_existing, write_features
    from sweep.run import main as sweep_main

    features = tmp_path / "musicfm_all.parquet"
    shutil.copy(first_run, features)
    provenance = json.loads(load_features(features).metadata["mer_uq.musicfm"])
    rows = read_existing(features, provenance)
    rng = np.random.default_rng(0)
    for song_id in load_deam().songs["song_id"]:
        if int(song_id) not in rows.vectors:
            rows.add(int(song_id), rng.standard_normal((3, 64)).astype(np.float32))
    write_features(features, rows, provenance, default_layer=2)

    out = tmp_path / "sweep"
    code = sweep_main(["--methods", "nll", "--seeds", "1", "--features", str(features),
                       "--feature-column", "layer_01", "--epochs", "1", "--steps-per-epoch",
                       "1", "--mc-passes", "2", "--no-report", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "sweep.json").read_text())
    assert record["features"] == str(features) and record["feature_column"] == "layer_01"
    assert len(list((out / "trials").glob("nll__*.parquet"))) == 1


def test_pool_larger_than_cluster_is_one_clear_error(
        ray_session, audio_dir: Path, golden_model, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """No song before the whole pool is up (sweep.embed_pipeline): 3 one-CPU actors never fit
    the session's 2 CPUs, so the run stops after the start timeout with exit 2 and writes
    nothing, instead of embedding on whichever actors did start."""
    monkeypatch.setattr("sweep.embed_pipeline.ACTOR_START_TIMEOUT_S", 5)
    out = tmp_path / "f.parquet"
    code = main(["--audio", str(audio_dir), "--checkpoint", str(golden_model["checkpoint"]),
                 "--stats", str(golden_model["stats"]), "--model-config",
                 str(golden_model["config"]), "--out", str(out), "--workers", "3",
                 "--cpus-per-worker", "1"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("sweep.embed: error: --workers 3: the model actors (1.0 CPU"), error
    assert "within 5 s" in error
    assert not out.exists()
