"""sweep.embed's driver-side helpers: file listing, layer choice, option parsing, and the
input checks that must fail before Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mer_uq.musicfm import MusicFMConfig
from sweep.embed import (
    EmbedError,
    EmbedOptions,
    list_audio_files,
    parse_args,
    resolve_layers,
    validate_model_inputs,
)
from sweep.embed_output import errors_path

TINY = MusicFMConfig(encoder_dim=32, encoder_depth=2, num_attention_heads=4,
                     intermediate_size=64, conv_dim=4)


def _options(**changes) -> EmbedOptions:
    base = {"audio": Path("a"), "checkpoint": Path("c.pt"), "stats": Path("s.json"),
            "out": Path("f.parquet")}
    return EmbedOptions(**(base | changes))


def test_list_audio_files(tmp_path: Path) -> None:
    for name in ("10.mp3", "2.WAV", "3.flac", "notes.txt", "intro.mp3"):
        (tmp_path / name).write_bytes(b"")
    songs, bad = list_audio_files(tmp_path)
    assert [(i, p.name) for i, p in songs] == [(2, "2.WAV"), (3, "3.flac"), (10, "10.mp3")]
    assert [Path(b["path"]).name for b in bad] == ["intro.mp3"]


def test_two_files_of_one_song_rejected(tmp_path: Path) -> None:
    (tmp_path / "2.mp3").write_bytes(b"")
    (tmp_path / "2.wav").write_bytes(b"")
    with pytest.raises(EmbedError, match=r"2\.mp3 / 2\.wav"):
        list_audio_files(tmp_path)
    with pytest.raises(EmbedError, match="not a folder"):
        list_audio_files(tmp_path / "absent")


def test_resolve_layers() -> None:
    full = MusicFMConfig()
    assert resolve_layers(_options(), full) == (tuple(range(13)), 7)
    assert resolve_layers(_options(), TINY) == ((0, 1, 2), 2)
    assert resolve_layers(_options(layers=(12, 0, 12)), full) == ((0, 12), 12)
    assert resolve_layers(_options(layers=(0, 5), default_layer=0), full) == ((0, 5), 0)
    with pytest.raises(EmbedError, match=r"--layers \[13\]"):
        resolve_layers(_options(layers=(13,)), full)
    with pytest.raises(EmbedError, match="--default-layer 3"):
        resolve_layers(_options(layers=(0, 5), default_layer=3), full)


def test_parse_args_defaults_and_types() -> None:
    options = parse_args(["--audio", "A", "--checkpoint", "c.pt", "--stats", "s.json",
                          "--out", "f.parquet", "--layers", "6", "7"])
    assert options.layers == (6, 7) and options.workers == 1 and options.batch_size == 1
    assert options.gpus_per_worker == 0.0 and options.precision == "fp32"
    with pytest.raises(SystemExit):
        parse_args(["--audio", "A", "--checkpoint", "c", "--stats", "s", "--out", "o",
                    "--workers", "0"])


def test_bad_stats_fails_before_ray(tmp_path: Path, musicfm_fixtures: Path) -> None:
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"spec_256_mean": 1.0}))
    golden = musicfm_fixtures / "golden"
    options = _options(checkpoint=golden / "tiny_checkpoint.pt", stats=stats,
                       model_config=golden / "tiny_config.json")
    with pytest.raises(EmbedError, match=r"stats\.json.*melspec_2048_mean"):
        validate_model_inputs(options)


def test_errors_file_sits_next_to_features() -> None:
    assert errors_path(Path("out/musicfm.parquet")) == Path("out/musicfm.errors.csv")
