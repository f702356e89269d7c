"""One-trial CLI: train one method with one seed on DEAM and print its test scores.

    python -m mer_uq.trial_cli --method nll --seed 0 [--features PATH] [--json]

Defaults: the bundled DEAM annotations and split, the bundled openSMILE features, the
paper's training settings. For a look at the whole study use the sweep instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from mer_uq.data import DeamDataError, load_deam, load_features
from mer_uq.methods import METHODS, UnknownMethodError, method_spec
from mer_uq.model import FCNConfig
from mer_uq.training import TrainConfig, TrainingDivergedError
from mer_uq.trial import TrialSpec, run_trial


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mer_uq.trial_cli", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", default=None, help="feature Parquet (default: bundled)")
    parser.add_argument("--feature-column", "--column", dest="column", default=None,
                        help="vector column of the feature file")
    parser.add_argument("--deam-dir", default=None, help="DEAM folder (default: bundled)")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--steps-per-epoch", type=int, default=TrainConfig.steps_per_epoch)
    parser.add_argument("--mc-passes", type=int, default=100)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _table(method: str, scores: dict[str, float]) -> str:
    """Rows: scores; columns: dimensions."""
    prefix = f"test/{method}/"
    by_name: dict[str, dict[str, float]] = {}
    for key, value in scores.items():
        if key.startswith(prefix):
            dim, name = key[len(prefix) :].split("/")
            by_name.setdefault(name, {})[dim] = value
    dims = sorted({d for values in by_name.values() for d in values}, reverse=True)
    lines = [f"{'score':<20}" + "".join(f"{d:>10}" for d in dims)]
    for name, values in by_name.items():
        lines.append(f"{name:<20}" + "".join(f"{values[d]:>10.3f}" for d in dims))
    return "\n".join(lines)


def check_device(name: str) -> None:
    """A device this machine has, else ValueError (torch would raise an AssertionError
    deep inside training, after the data loaded)."""
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a torch device (auto, cpu, cuda, cuda:1, ...)"
                         ) from err
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: this machine has no CUDA GPU (torch "
                             f"{torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA GPU(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: only cpu and cuda devices are supported")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_device(args.device)
        method = method_spec(args.method)
        spec = TrialSpec(
            training=method.training,
            seeds=(args.seed,),
            model=FCNConfig(),
            train=TrainConfig(
                epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, device=args.device
            ),
            mc_passes=args.mc_passes,
            methods=(args.method,),
        )
        dataset = load_deam(args.deam_dir)
        features = load_features(args.features, args.column)
        started = time.perf_counter()
        result = run_trial(spec, dataset, features)
    except (UnknownMethodError, DeamDataError, TrainingDivergedError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    test_scores = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    if args.json:
        print(
            json.dumps(
                {
                    "method": args.method,
                    "training": method.training,
                    "seed": args.seed,
                    "val_loss": result.metrics["val_loss"],
                    "epochs": len(result.history),
                    "seconds": round(seconds, 2),
                    "test": test_scores,
                },
                indent=2,
            )
        )
    else:
        print(
            f"{args.method} (training {method.training!r}, loss {method.loss}), seed "
            f"{args.seed}: {len(result.history)} epochs in {seconds:.1f} s, best val loss "
            f"{result.metrics['val_loss']:.4f}"
        )
        print(_table(args.method, test_scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
