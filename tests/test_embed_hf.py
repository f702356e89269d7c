"""``sweep.embed --hf-model``: tiny random-initialised Wav2Vec2, HuBERT and AST models saved
with save_pretrained, generated audio through the same Ray Data pipeline as MusicFM, and
every written vector against a plain transformers forward pass, one channel at a time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import (
    ASTConfig,
    ASTFeatureExtractor,
    ASTModel,
    AutoFeatureExtractor,
    AutoModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
)

from mer_uq.audio import load_audio
from mer_uq.data.features import load_features
from mer_uq.hf_model import HFAudioEmbedder
from sweep.embed import EmbedOptions, main, run_embedding

RATE = 16_000
SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 32}
SPEECH = {**SMALL, "conv_dim": (8,) * 7, "num_conv_pos_embeddings": 16,
          "num_conv_pos_embedding_groups": 2}


def _save(folder: Path, model: torch.nn.Module, extractor) -> Path:
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf_models")
    torch.manual_seed(0)
    speech_fe = Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=True,
                                         return_attention_mask=False)
    return {
        "wav2vec2": _save(root / "wav2vec2", Wav2Vec2Model(Wav2Vec2Config(**SPEECH)),
                          speech_fe),
        "hubert": _save(root / "hubert", HubertModel(HubertConfig(**SPEECH)), speech_fe),
        "ast": _save(root / "ast", ASTModel(ASTConfig(**SMALL, num_mel_bins=16,
                                                      max_length=64)),
                     ASTFeatureExtractor(num_mel_bins=16, max_length=64,
                                         sampling_rate=RATE)),
    }


def _tone(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * (220 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    return np.stack([left, right], axis=1).astype(np.float32)


def _reference(folder: Path, stereo: np.ndarray) -> np.ndarray:
    """[states, dim]: plain transformers, each channel alone, mean over frames, then over
    the two channels."""
    extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    per_channel = []
    for channel in stereo:
        inputs = extractor(channel, sampling_rate=RATE, return_tensors="pt")
        with torch.no_grad():
            states = model(**inputs, output_hidden_states=True).hidden_states
        per_channel.append(np.stack([s[0].mean(dim=0).numpy() for s in states]))
    return np.mean(per_channel, axis=0)


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "ast"])
def test_embedder_equals_a_plain_forward_pass(models: dict[str, Path], name: str) -> None:
    stereo = _tone(2.0, RATE, seed=1).T
    pooled = HFAudioEmbedder(models[name]).embed(np.stack([stereo, stereo[::-1]]))
    assert pooled.shape == (2, 3, 16)
    np.testing.assert_allclose(pooled[0], _reference(models[name], stereo), atol=1e-5)
    np.testing.assert_allclose(pooled[1], pooled[0], atol=1e-5)  # channel order is pooled


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf_audio")
    sf.write(folder / "1.wav", _tone(3.0, 44_100, seed=1), 44_100, subtype="FLOAT")
    sf.write(folder / "2.flac", _tone(2.0, RATE, seed=2), RATE)
    (folder / "3.mp3").write_bytes(b"ID3 not really an mp3" * 50)  # corrupt
    return folder


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("name", ["hubert", "ast"])  # wav2vec2: as hubert, one Ray run less
def test_pipeline_writes_every_layer_as_a_plain_forward_pass(
        ray_session, models: dict[str, Path], audio_dir: Path, tmp_path: Path,
        name: str) -> None:
    out = tmp_path / f"{name}.parquet"
    assert main(["--audio", str(audio_dir), "--hf-model", str(models[name]), "--out",
                 str(out), "--batch-size", "2"]) == 0
    for song_id, file in ((1, "1.wav"), (2, "2.flac")):
        expected = _reference(models[name], load_audio(audio_dir / file, sample_rate=RATE))
        for layer in range(3):
            table = load_features(out, column=f"layer_{layer:02d}")
            assert table.song_ids.tolist() == [1, 2]
            np.testing.assert_allclose(table.rows([song_id])[0], expected[layer], atol=1e-5)
    errors = out.with_name(f"{name}.errors.csv").read_text().splitlines()
    assert len(errors) == 2 and "3.mp3" in errors[1]
    meta = json.loads(load_features(out).metadata["mer_uq.hf_model"])
    assert meta["model_type"] == {"wav2vec2": "wav2vec2", "hubert": "hubert",
                                  "ast": "audio-spectrogram-transformer"}[name]
    assert meta["layers"] == [0, 1, 2] and meta["audio"]["sample_rate"] == RATE
    assert load_features(out).column == "layer_02"  # the deepest: no layer 7 here
    if name == "hubert":  # a rerun embeds only the new song and keeps the others
        before = load_features(out, column="layer_01")
        sf.write(audio_dir / "4.wav", _tone(1.0, RATE, seed=4), RATE)
        summary = run_embedding(EmbedOptions(audio=audio_dir, checkpoint=None, stats=None,
                                             out=out, hf_model=models[name]))
        assert (summary.embedded, summary.skipped) == (1, 2)
        after = load_features(out, column="layer_01")
        assert after.song_ids.tolist() == [1, 2, 4]
        assert np.array_equal(after.rows(before.song_ids), before.matrix)
        (audio_dir / "4.wav").unlink()


def test_bad_model_folders_fail_in_one_line_before_ray(
        models: dict[str, Path], audio_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "f.parquet")
    assert main(["--audio", str(audio_dir), "--hf-model", str(tmp_path / "none"),
                 "--out", out]) == 2
    assert "not a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--audio", str(audio_dir), "--hf-model", str(empty), "--out", out]) == 2
    assert "not a loadable transformers audio model" in capsys.readouterr().err
    remote = tmp_path / "remote"
    remote.mkdir()
    config = json.loads((models["hubert"] / "config.json").read_text())
    config["model_type"] = "custom_music_model"  # code only in the folder, as MERT's
    config["auto_map"] = {"AutoConfig": "configuration_custom.CustomConfig",
                          "AutoModel": "modeling_custom.CustomModel"}
    (remote / "config.json").write_text(json.dumps(config))
    shutil.copy(models["hubert"] / "preprocessor_config.json", remote)
    assert main(["--audio", str(audio_dir), "--hf-model", str(remote), "--out", out]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert main(["--audio", str(audio_dir), "--hf-model", str(models["ast"]), "--checkpoint",
                 "x.pt", "--out", out]) == 2
    assert "replaces --checkpoint" in capsys.readouterr().err
    assert main(["--audio", str(audio_dir), "--out", out]) == 2
    assert "--hf-model" in capsys.readouterr().err
    assert not Path(out).exists()
