"""Speed of the embedding path: decode + resample, the full-size model, and Ray Data.

Run by hand, never in CI (a full-size song costs ~1.5 TFLOP):

    python benchmarks/bench_embed.py                      # CPU, 3 songs through the model
    python benchmarks/bench_embed.py --device cuda --model-songs 64 --batch-size 8 \
        --precision bf16                                  # on a GPU node

Measures, on synthetic 45 s 44.1 kHz stereo mp3s and a random-weight full-size MusicFM:
1. decode + resample songs/s on one core (soundfile + soxr, as the Ray decode tasks do);
2. model songs/s in a bare loop calling ``embed_batch`` (after one warm-up call), and the
   FLOPs of one song (torch's FlopCounterMode);
3. the same songs through ``sweep.embed``'s Ray Data graph (decode tasks + one actor):
   start-up (actor start + checkpoint load + first song) and steady-state songs/s, so the
   per-song overhead of Ray Data against the bare loop is visible apart from start-up;
4. the error of bf16/fp16 autocast against fp32, per layer (``--precision``).
Prints a Markdown summary and optionally writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

import sweep  # noqa: F401  (sets the project's Ray environment before Ray is imported)
from mer_uq.audio import TARGET_SAMPLE_RATE, decode, fit_length, load_audio, resample, to_stereo
from mer_uq.musicfm import (
    MelStats,
    MusicFM,
    MusicFMConfig,
    embed_batch,
    save_checkpoint,
)

STATS = MelStats(mean=6.768444971712967, std=18.417922652295623)
N_45S = 45 * TARGET_SAMPLE_RATE
PARTS = ("decode", "flops", "bare", "error", "ray", "overhead")
# A small model (the golden test's sizes) for measuring Ray Data's per-song cost: with the
# full-size model on a shared CPU, load noise is larger than the overhead being measured.
SMALL = MusicFMConfig(encoder_dim=64, encoder_depth=2, num_attention_heads=4,
                      intermediate_size=256, conv_dim=8)


def synthetic_song(seed: int, seconds: float = 45.0, rate: int = 44_100) -> np.ndarray:
    """[samples, 2]: a few decaying harmonic notes plus noise, so the codec does real work."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.02 * rng.standard_normal((t.size, 2))
    note_len = int(2.0 * rate)  # each note decays for 2 s (exp(-6) at its end)
    for onset in np.arange(0, seconds, 0.5):
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        start = int(onset * rate)
        local = t[start:start + note_len] - onset
        note = sum(np.sin(2 * np.pi * f0 * k * local) / k for k in range(1, 5))
        audio[start:start + note_len] += (
            0.1 * (note * np.exp(-3 * local))[:, None] * rng.uniform(0.5, 1.0, 2))
    return np.clip(audio, -1, 1).astype(np.float32)


def write_songs(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / f"{1000 + i}.mp3"
        sf.write(path, synthetic_song(i), 44_100, format="MP3", subtype="MPEG_LAYER_III")
        paths.append(path)
    return paths


def bench_decode(paths: list[Path], repeats: int) -> dict[str, float]:
    """Seconds per song on one core, split into decode and resample + pad."""
    decode_s = resample_s = 0.0
    count = 0
    for _ in range(repeats):
        for path in paths:
            t0 = time.perf_counter()
            audio, rate = decode(path)
            t1 = time.perf_counter()
            fit_length(resample(to_stereo(audio), rate), N_45S)
            t2 = time.perf_counter()
            decode_s += t1 - t0
            resample_s += t2 - t1
            count += 1
    per_song = (decode_s + resample_s) / count
    return {"decode_s_per_song": decode_s / count, "resample_s_per_song": resample_s / count,
            "songs_per_s_per_core": 1.0 / per_song}


def song_flops(model: MusicFM, waveform: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(waveform)
    return float(counter.get_total_flops())


def bench_bare_loop(model: MusicFM, paths: list[Path], batch_size: int,
                    precision: str) -> dict[str, float]:
    """Decode + model for each batch of songs in one process, as a user would write it."""
    device = next(model.parameters()).device
    warm = np.stack([load_audio(paths[0])] * batch_size)
    embed_batch(model, warm, precision)  # warm-up: kernels, allocator, autotuning
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model_s = 0.0
    for start in range(0, len(paths), batch_size):
        audio = np.stack([load_audio(p) for p in paths[start:start + batch_size]])
        t1 = time.perf_counter()
        embed_batch(model, audio, precision)  # returns numpy: synchronises
        model_s += time.perf_counter() - t1
    total = time.perf_counter() - t0
    return {"songs": len(paths), "total_s": total, "songs_per_s": len(paths) / total,
            "model_only_songs_per_s": len(paths) / model_s}


def bench_ray(paths: list[Path], checkpoint: Path, stats: Path, config: MusicFMConfig,
              batch_size: int, gpus: float, precision: str) -> dict[str, float]:
    """The sweep.embed graph on the same songs; per-output timestamps on the driver."""
    import ray

    from sweep.embed_pipeline import ModelSpec, Resources, build_dataset
    from sweep.ray_runtime import connect, disconnect

    connection = connect(None)
    try:
        cpus = int(ray.cluster_resources()["CPU"])
        spec = ModelSpec(checkpoint=str(checkpoint), stats=str(stats), config=config,
                         layers=tuple(range(config.n_hidden_states)),
                         precision=precision,  # type: ignore[arg-type]
                         torch_threads=cpus if gpus == 0 else 1)
        resources = Resources(workers=1, cpus_per_worker=1.0 if gpus else 0.5,
                              gpus_per_worker=gpus, batch_size=batch_size)
        songs = [(int(p.stem), p) for p in paths]
        t0 = time.perf_counter()
        stamps: list[float] = []
        for batch in build_dataset(songs, spec, resources).iter_batches(batch_size=None):
            stamps.extend([time.perf_counter()] * len(batch["song_id"]))
        assert len(stamps) == len(paths)
        # Ray Data may hold finished songs back and release them together: only the total
        # (start-up included) is a reliable number.
        return {"songs": len(paths), "total_s": stamps[-1] - t0, "first_output_s": stamps[0] - t0}
    finally:
        disconnect(connection)


def bench_overhead(folder: Path, n_songs: int) -> dict[str, float]:
    """Per-song seconds of bare loop vs Ray Data with a small model, same songs, CPU."""
    paths = sorted((folder / "audio").glob("*.mp3"))[:n_songs]
    torch.manual_seed(0)
    model = MusicFM(SMALL, STATS).eval()
    bare = bench_bare_loop(model, paths, batch_size=1, precision="fp32")
    checkpoint = folder / "small.pt"
    save_checkpoint(model, checkpoint)
    stats = folder / "stats.json"
    stats.write_text(json.dumps({"melspec_2048_mean": STATS.mean, "melspec_2048_std": STATS.std}))
    # Ray Data buffers outputs, so per-output timestamps mislead; instead the marginal cost
    # of n - 1 more songs: a one-song run (start-up + 1 song) vs an n-song run.
    one = bench_ray(paths[:1], checkpoint, stats, SMALL, 1, gpus=0.0, precision="fp32")
    many = bench_ray(paths, checkpoint, stats, SMALL, 1, gpus=0.0, precision="fp32")
    bare_s = 1 / bare["songs_per_s"]
    ray_s = (many["total_s"] - one["total_s"]) / (len(paths) - 1)
    return {"songs": len(paths), "bare_s_per_song": bare_s, "ray_marginal_s_per_song": ray_s,
            "ray_one_song_total_s": one["total_s"], "ray_all_songs_total_s": many["total_s"],
            "ray_overhead_s_per_song": ray_s - bare_s}


def precision_error(model: MusicFM, waveform: np.ndarray, precision: str) -> list[float]:
    """Per layer: max |autocast - fp32| / max |fp32| of the pooled vectors."""
    reference = embed_batch(model, waveform[None], "fp32")[0]
    reduced = embed_batch(model, waveform[None], precision)[0]
    return [float(np.abs(r - f).max() / np.abs(f).max()) for r, f in zip(reduced, reference,
                                                                          strict=True)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model-songs", type=int, default=3)
    parser.add_argument("--decode-songs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                        help="precision of the speed runs")
    parser.add_argument("--error-precisions", nargs="*", default=["bf16"],
                        help="autocast dtypes whose error vs fp32 is measured")
    parser.add_argument("--error-seconds", type=float, default=45.0,
                        help="clip length for the error measurement")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which measurements to run")
    parser.add_argument("--overhead-songs", type=int, default=16,
                        help="songs through the small model for the Ray Data overhead")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": args.device,
                    "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                    "load_average": os.getloadavg()},
        "settings": vars(args) | {"json": str(args.json)},
    }
    with tempfile.TemporaryDirectory(prefix="bench_embed_") as tmp:
        folder = Path(tmp)
        n_files = max(args.model_songs, args.decode_songs if "decode" in args.parts else 0,
                      args.overhead_songs if "overhead" in args.parts else 0)
        audio_dir = folder / "audio"
        audio_dir.mkdir()
        paths = write_songs(audio_dir, n_files)
        if "decode" in args.parts:
            results["decode"] = bench_decode(paths[:args.decode_songs], repeats=2)
            print("decode:", results["decode"], flush=True)

        config = MusicFMConfig()
        torch.manual_seed(0)
        model = MusicFM(config, STATS).to(args.device).eval()
        results["parameters_millions"] = sum(p.numel() for p in model.parameters()) / 1e6
        song = load_audio(paths[0])
        if "flops" in args.parts:
            results["tflop_per_song"] = song_flops(
                model, torch.from_numpy(song).to(args.device)) / 1e12
            print("TFLOP/song:", results["tflop_per_song"], flush=True)
        if "bare" in args.parts:
            results["bare_loop"] = bench_bare_loop(model, paths[:args.model_songs],
                                                   args.batch_size, args.precision)
            print("bare loop:", results["bare_loop"], flush=True)
        if "error" in args.parts:
            clip = song[:, :round(args.error_seconds * TARGET_SAMPLE_RATE)]
            results["autocast_error"] = {p: precision_error(model, clip, p)
                                         for p in args.error_precisions}
            print("autocast error:", results["autocast_error"], flush=True)

        if "ray" in args.parts:
            checkpoint = folder / "random_full_size.pt"
            save_checkpoint(model.cpu(), checkpoint)
            del model
            stats = folder / "stats.json"
            stats.write_text(json.dumps({"melspec_2048_mean": STATS.mean,
                                         "melspec_2048_std": STATS.std}))
            results["ray_data"] = bench_ray(
                paths[:args.model_songs], checkpoint, stats, config, args.batch_size,
                gpus=1.0 if args.device == "cuda" else 0.0, precision=args.precision)
            print("ray data:", results["ray_data"], flush=True)
            if "bare_loop" in results:
                results["ray_total_vs_bare_total"] = (
                    results["ray_data"]["total_s"] / results["bare_loop"]["total_s"])
        if "overhead" in args.parts:
            results["overhead_small_model"] = bench_overhead(folder, args.overhead_songs)
            print("overhead:", results["overhead_small_model"], flush=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
