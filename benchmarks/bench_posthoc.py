"""Cost of the post-hoc uncertainty methods against the training they sit on.

Run by hand, never in CI:

    python benchmarks/bench_posthoc.py                 # bundled DEAM openSMILE, 15 seeds
    python benchmarks/bench_posthoc.py --seeds 5 --repeats 3

Trains the `mean` key's stack once (the model seeds, MC dropout and Laplace share), then
times, interleaved over `--repeats`: the last-layer Laplace (fit on the training songs,
prior precision on the validation songs, predict every validation and test song), MC
dropout's 100 passes (the paper's own post-hoc method, for scale), and SWAG's collection
(20 epochs) and 30-sample predictive. Prints seconds per trial (all seeds together).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mer_uq.data import load_deam, load_features, standardise
from mer_uq.laplace import fit_last_layer_laplace
from mer_uq.prediction import mc_dropout
from mer_uq.swag import collect_swag, swag_predict
from mer_uq.training import TrainConfig, TrainingData, cpu_threads, train_stack
from mer_uq.trial import training_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dataset, features = load_deam(), load_features()
    ids = {s: dataset.song_ids(s) for s in ("train", "valid", "test")}
    table = standardise(features, ids["train"])
    data = TrainingData(table.rows(ids["train"]), training_targets(dataset, ids["train"]),
                        table.rows(ids["valid"]), training_targets(dataset, ids["valid"]))
    x_eval = table.rows(np.concatenate([ids["valid"], ids["test"]]))
    cfg = TrainConfig()
    with cpu_threads(cfg.cpu_threads):
        start = time.perf_counter()
        trained = train_stack("mean", tuple(range(args.seeds)), data, train_config=cfg)
        train_s = time.perf_counter() - start
        times: dict[str, list[float]] = {"laplace": [], "mc_dropout (100 passes)": [],
                                         "swag collect + predict": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            fit = fit_last_layer_laplace(trained.model, data.x_train, data.t_train,
                                         data.x_valid, data.t_valid)
            fit.predict(trained.model, x_eval)
            times["laplace"].append(time.perf_counter() - start)
            start = time.perf_counter()
            mc_dropout(trained.model, x_eval, 100)
            times["mc_dropout (100 passes)"].append(time.perf_counter() - start)
            start = time.perf_counter()
            moments = collect_swag(trained.model, "mean", data, cfg)
            swag_predict(trained.model, moments, x_eval)
            times["swag collect + predict"].append(time.perf_counter() - start)
    print(f"| what ({args.seeds} seeds stacked, one thread) | seconds per trial |")
    print("|---|---|")
    print(f"| train the mean stack (early stopping) | {train_s:.2f} |")
    for name, values in times.items():
        print(f"| {name} | {min(values):.3f} (best of {len(values)}; "
              f"median {np.median(values):.3f}) |")


if __name__ == "__main__":
    main()
