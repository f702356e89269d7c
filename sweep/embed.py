"""``python -m sweep.embed``: DEAM audio folder -> MusicFM (or any local transformers audio
model's) feature table, on Ray Data.

    python -m sweep.embed --audio MEMD_audio --checkpoint pretrained_msd.pt \
        --stats msd_stats.json --out features/musicfm.parquet [--gpus-per-worker 1]
    python -m sweep.embed --audio MEMD_audio --hf-model models/hubert-base \
        --out features/hubert.parquet

The output (one row per song, one column per hidden state ``layer_00`` ..) plugs into
``sweep.run --features``. Reruns skip songs already in the output; files that fail to decode
are listed in ``<out stem>.errors.csv``. See docs/embedding.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import mer_uq
from mer_uq.audio import (
    AUDIO_SUFFIXES,
    TARGET_SECONDS,
    AudioExtraMissingError,
    require_audio_extra,
)
from mer_uq.cli_args import positive_int
from mer_uq.musicfm import (
    DEFAULT_LAYER,
    PRECISIONS,
    CheckpointError,
    MelStats,
    MusicFMConfig,
    Precision,
    read_checkpoint,
)
from mer_uq.musicfm.checkpoint import check_layout
from sweep.embed_output import (
    PROVENANCE_KEY,
    SOURCE,
    EmbedOutputError,
    FeatureRows,
    errors_path,
    read_existing,
    write_errors,
    write_features,
)
from sweep.ray_runtime import RayConnectionError


@dataclass
class EmbedOptions:
    """Everything one ``sweep.embed`` run needs; defaults are the CLI's."""

    audio: Path
    checkpoint: Path | None  # MusicFM (with stats), or None with hf_model
    stats: Path | None
    out: Path
    model_config: Path | None = None
    layers: tuple[int, ...] | None = None  # None -> every hidden state
    default_layer: int | None = None  # None -> DEFAULT_LAYER if stored, else the deepest
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None  # None -> 1 with a GPU, else 0.5 (see docs)
    threads_per_worker: int | None = None  # torch threads; None -> this node's CPUs / workers
    batch_size: int = 1
    precision: Precision = "fp32"
    flush_every: int = 200
    address: str | None = None
    hf_model: Path | None = None  # a local transformers checkpoint folder instead of MusicFM
    trust_remote_code: bool = False  # let transformers run Python files of hf_model


@dataclass
class EmbedSummary:
    features: Path
    errors_file: Path
    embedded: int
    skipped: int
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class EmbedError(ValueError):
    """Bad input to sweep.embed (folder, checkpoint, config, layers)."""


def list_audio_files(audio_dir: Path) -> tuple[list[tuple[int, Path]], list[dict[str, str]]]:
    """(song_id, path) for every audio file, sorted by id, plus error rows for audio files
    whose stem is not an integer song id. Two files of one song is an error."""
    if not audio_dir.is_dir():
        raise EmbedError(f"--audio {audio_dir}: not a folder")
    songs: dict[int, Path] = {}
    bad: list[dict[str, str]] = []
    duplicates: list[str] = []
    for path in sorted(audio_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        if not path.stem.isdigit():
            bad.append({"song_id": "", "path": str(path),
                        "error": "file name is not <integer song id>.<ext>"})
            continue
        song_id = int(path.stem)
        if song_id in songs:
            duplicates.append(f"{songs[song_id].name} / {path.name}")
        songs[song_id] = path
    if duplicates:
        raise EmbedError(f"--audio {audio_dir}: several files for one song: {duplicates}")
    return sorted(songs.items()), bad


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_layers(options: EmbedOptions, config: Any) -> tuple[tuple[int, ...], int]:
    """The stored layers and the default layer, validated against the model depth
    (``config.n_hidden_states``: a MusicFMConfig or a mer_uq.hf_model.HFModelInfo)."""
    available = range(config.n_hidden_states)
    layers = tuple(sorted(set(options.layers))) if options.layers else tuple(available)
    outside = [layer for layer in layers if layer not in available]
    if outside:
        raise EmbedError(f"--layers {outside} outside 0..{config.n_hidden_states - 1}")
    if options.default_layer is not None:
        if options.default_layer not in layers:
            raise EmbedError(f"--default-layer {options.default_layer} not among --layers "
                             f"{list(layers)}")
        return layers, options.default_layer
    return layers, DEFAULT_LAYER if DEFAULT_LAYER in layers else layers[-1]


def validate_model_inputs(options: EmbedOptions) -> tuple[MusicFMConfig, MelStats, str]:
    """Fail on the driver, before any worker starts, on a bad config, stats or checkpoint.
    Returns the config, the stats and the checkpoint's sha256."""
    try:
        config = (MusicFMConfig.from_json(options.model_config) if options.model_config
                  else MusicFMConfig())
        stats = MelStats.from_json(options.stats)
        check_layout(read_checkpoint(options.checkpoint), config, str(options.checkpoint))
    except (CheckpointError, ValueError) as err:
        raise EmbedError(str(err)) from err
    if options.precision not in PRECISIONS:
        raise EmbedError(f"--precision must be one of {PRECISIONS}")
    return config, stats, sha256_of(options.checkpoint)


def provenance(config: MusicFMConfig, stats: MelStats, checkpoint_sha256: str,
               layers: tuple[int, ...], options: EmbedOptions) -> dict[str, Any]:
    """Metadata stored in the table: enough to tell which model produced it."""
    return {
        "config": config.to_dict(),
        "checkpoint_sha256": checkpoint_sha256,
        "checkpoint_file": options.checkpoint.name,
        "mel_stats": {"mean": stats.mean, "std": stats.std},
        "layers": list(layers),
        "audio": {"sample_rate": config.sample_rate, "seconds": TARGET_SECONDS,
                  "channels": "stereo, mono duplicated", "pooling": "mean over time and channels"},
        "precision": options.precision,
        "mer_uq_version": mer_uq.__version__,
    }


class ProgressLine:
    """``[embed] done/total songs, errors, rate, ETA`` at most every ``interval_s``."""

    def __init__(self, total: int, interval_s: float = 10.0, stream: TextIO | None = None):
        self.total, self.interval_s = total, interval_s
        self.stream = stream or sys.stderr
        self.started = self.last = time.monotonic()

    def update(self, done: int, errors: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval_s:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.nan
        eta_text = f"{eta / 60:.1f} min" if math.isfinite(eta) else "?"
        print(f"[embed] {done}/{self.total} songs, {errors} errors, {rate:.2f} songs/s, "
              f"ETA {eta_text}", file=self.stream, flush=True)


@dataclass(frozen=True)
class PreparedModel:
    """One model, checked on the driver: its depth (for --layers), its provenance for the
    table, where that goes, and how an actor's spec is made (given torch threads)."""

    info: Any  # has n_hidden_states
    provenance: dict[str, Any]
    provenance_key: str
    source: str
    make_spec: Callable[[int], Any]


def prepare_model(options: EmbedOptions) -> tuple[PreparedModel, tuple[int, ...], int]:
    """Validate the model inputs and choose layers, before anything is read or started."""
    if options.hf_model is not None:
        return _prepare_hf(options)
    if options.checkpoint is None or options.stats is None:
        raise EmbedError("give --checkpoint and --stats (MusicFM) or --hf-model DIR")
    config, stats, checkpoint_sha = validate_model_inputs(options)
    layers, default_layer = resolve_layers(options, config)
    meta = provenance(config, stats, checkpoint_sha, layers, options)
    checkpoint, stats_file = str(Path(options.checkpoint).resolve()), str(
        Path(options.stats).resolve())
    return PreparedModel(
        info=config, provenance=meta, provenance_key=PROVENANCE_KEY, source=SOURCE,
        make_spec=lambda threads: _musicfm_spec(checkpoint, stats_file, config, layers,
                                                options.precision, threads),
    ), layers, default_layer


def _musicfm_spec(checkpoint: str, stats: str, config: MusicFMConfig, layers: tuple[int, ...],
                  precision: Precision, threads: int) -> Any:
    from sweep.embed_pipeline import ModelSpec

    return ModelSpec(checkpoint=checkpoint, stats=stats, config=config, layers=layers,
                     precision=precision, torch_threads=threads)


def _prepare_hf(options: EmbedOptions) -> tuple[PreparedModel, tuple[int, ...], int]:
    from mer_uq.hf_model import HFModelError, describe_hf_model
    from sweep.embed_hf import HF_PROVENANCE_KEY, HF_SOURCE, HFModelSpec, hf_provenance

    if options.checkpoint is not None or options.stats is not None:
        raise EmbedError("--hf-model replaces --checkpoint/--stats (those are MusicFM's)")
    if options.precision != "fp32":
        raise EmbedError("--precision: a transformers model runs in fp32 only")
    if importlib.util.find_spec("transformers") is None:
        raise EmbedError("--hf-model needs transformers: pip install 'mer-uq[audio]'")
    try:
        info = describe_hf_model(Path(options.hf_model), options.trust_remote_code)
    except HFModelError as err:
        raise EmbedError(str(err)) from err
    layers, default_layer = resolve_layers(options, info)
    return PreparedModel(
        info=info, provenance=hf_provenance(info, layers), provenance_key=HF_PROVENANCE_KEY,
        source=HF_SOURCE,
        make_spec=lambda threads: HFModelSpec(folder=info.folder, sample_rate=info.sample_rate,
                                              layers=layers, torch_threads=threads,
                                              trust_remote_code=options.trust_remote_code),
    ), layers, default_layer


def run_embedding(options: EmbedOptions) -> EmbedSummary:
    """Embed every song of ``options.audio`` not yet in ``options.out``; see module doc."""
    started = time.monotonic()
    model, _, default_layer = prepare_model(options)
    meta = model.provenance
    out = Path(options.out)
    try:
        rows = read_existing(out, meta, model.provenance_key)
    except EmbedOutputError as err:
        raise EmbedError(str(err)) from err
    songs, errors = list_audio_files(Path(options.audio))
    todo = [(song_id, path) for song_id, path in songs if song_id not in rows.vectors]
    skipped = len(songs) - len(todo)
    print(f"[embed] {len(songs)} audio files: {skipped} already in {out}, {len(todo)} to embed",
          file=sys.stderr, flush=True)

    def flush() -> Path:
        return write_features(out, rows, meta, default_layer, model.provenance_key,
                              model.source)

    embedded = 0
    if todo:
        embedded = _embed_with_ray(todo, options, model, rows, errors, flush)
    if len(rows):
        flush()
    errors_file = write_errors(errors_path(out), errors)
    return EmbedSummary(features=out, errors_file=errors_file, embedded=embedded,
                        skipped=skipped, errors=errors, seconds=time.monotonic() - started)


def _embed_with_ray(
    todo: list[tuple[int, Path]],
    options: EmbedOptions,
    model: PreparedModel,
    rows: FeatureRows,
    errors: list[dict[str, str]],
    flush: Callable[[], object],
) -> int:
    """Run the Ray Data graph and fold its output into ``rows``/``errors``; returns the
    number of songs embedded. Imports Ray here so ``--help`` and input errors stay fast."""
    import ray

    from sweep.embed_pipeline import ACTOR_START_TIMEOUT_S, Resources, build_dataset
    from sweep.ray_runtime import connect, disconnect

    # The project's one way to attach to Ray (env defaults, auth, reuse of a running one).
    connection = connect(options.address)
    try:
        gpus = options.gpus_per_worker
        cpus = options.cpus_per_worker
        if cpus is None:
            cpus = 1.0 if gpus > 0 else 0.5
        spec = model.make_spec(_torch_threads(options, gpus, cpus))
        resources = Resources(workers=options.workers, cpus_per_worker=cpus,
                              gpus_per_worker=gpus, batch_size=options.batch_size)
        dataset = build_dataset(todo, spec, resources)
        progress = ProgressLine(total=len(todo))
        embedded = failed = since_flush = 0
        try:
            batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
            first = next(batches, None)
        except ray.exceptions.GetTimeoutError as err:
            raise EmbedError(
                f"--workers {options.workers}: the model actors ({cpus} CPU, {gpus} GPU "
                f"each) did not all start within {ACTOR_START_TIMEOUT_S} s; the cluster "
                "cannot hold them (see `ray status`)") from err
        for batch in itertools.chain([first] if first is not None else [], batches):
            for song_id, path, error, vector, node_ip in zip(
                    batch["song_id"], batch["path"], batch["error"], batch["vectors"],
                    batch["node_ip"], strict=True):
                if error:
                    errors.append({"song_id": str(int(song_id)), "path": str(path),
                                   "error": str(error)})
                    failed += 1
                else:
                    rows.add(int(song_id), vector, node_ip=str(node_ip))
                    embedded += 1
                    since_flush += 1
            progress.update(embedded + failed, failed)
            if since_flush >= options.flush_every:
                flush()
                since_flush = 0
        progress.update(embedded + failed, failed, force=True)
        return embedded
    finally:
        disconnect(connection)


def _torch_threads(options: EmbedOptions, gpus: float, cpus: float) -> int:
    """torch intra-op threads per actor. On GPU the host only feeds the device: as many as
    booked CPUs. On CPU the model is the whole cost, so the actors share the cores of a node
    (Ray's fractional booking only schedules; it does not pin)."""
    import ray

    if options.threads_per_worker:
        return options.threads_per_worker
    if gpus > 0:
        return max(1, math.ceil(cpus))
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    largest_node = max(node_cpus, default=os.cpu_count() or 1)
    total = int(ray.cluster_resources().get("CPU", largest_node))
    return max(1, min(largest_node, total // options.workers))


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> EmbedOptions:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.embed", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--audio", type=Path, required=True,
                        help="folder of <song_id>.mp3/.wav/.flac (DEAM: MEMD_audio)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="MusicFM checkpoint in the released layout (pretrained_msd.pt)")
    parser.add_argument("--stats", type=Path, default=None, help="MusicFM's msd_stats.json")
    parser.add_argument("--hf-model", type=Path, default=None,
                        help="instead of MusicFM: a local transformers audio model folder "
                        "(config.json, preprocessor_config.json, weights); nothing is "
                        "downloaded")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="let transformers run the Python files of --hf-model (models "
                        "whose code is not part of transformers, e.g. MERT); off: refused")
    parser.add_argument("--out", type=Path, required=True, help="feature table (.parquet)")
    parser.add_argument("--model-config", type=Path, default=None,
                        help="JSON of MusicFM sizes; default: the full-size MusicFM-MSD")
    parser.add_argument("--layers", type=int, nargs="+", default=None,
                        help="hidden states to store (0 = conv front end); default: all")
    parser.add_argument("--default-layer", type=int, default=None,
                        help=f"table's default column; default: {DEFAULT_LAYER} if stored, "
                        "else the deepest stored layer")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="model actors (one model load each)")
    parser.add_argument("--gpus-per-worker", type=_non_negative_float, default=0.0,
                        help="GPUs per actor (fractions share a GPU); 0 = CPU inference")
    parser.add_argument("--cpus-per-worker", type=_non_negative_float, default=None,
                        help="Ray CPUs booked per actor; default 1 with GPUs, else 0.5")
    parser.add_argument("--threads-per-worker", type=positive_int, default=None,
                        help="torch threads per actor; default: CPUs / workers on CPU")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="songs per model call (each song = 2 channels)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="autocast dtype of conv front end + conformer (mel stays fp32)")
    parser.add_argument("--flush-every", type=positive_int, default=200,
                        help="rewrite the table every N new songs, so a crash loses little")
    parser.add_argument("--address", default=None,
                        help="Ray cluster ('auto' or HOST:PORT); default: local instance")
    args = parser.parse_args(argv)
    return EmbedOptions(
        audio=args.audio, checkpoint=args.checkpoint, stats=args.stats, out=args.out,
        model_config=args.model_config, layers=tuple(args.layers) if args.layers else None,
        default_layer=args.default_layer, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
        threads_per_worker=args.threads_per_worker, batch_size=args.batch_size,
        precision=args.precision, flush_every=args.flush_every, address=args.address,
        hf_model=args.hf_model, trust_remote_code=args.trust_remote_code)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        require_audio_extra()
        summary = run_embedding(options)
    except (EmbedError, RayConnectionError, AudioExtraMissingError) as err:
        print(f"sweep.embed: error: {err}", file=sys.stderr)
        return 2
    print(f"[embed] wrote {summary.features}: {summary.embedded} songs embedded, "
          f"{summary.skipped} skipped (already there), {len(summary.errors)} errors "
          f"(listed in {summary.errors_file}), {summary.seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
