"""The positive control of the SD: Pearson r between each method's predicted SD and the
TRUE per-song rater SD of the synthetic data (mer_uq.synthetic), test split.

    python -m sweep.run --synthetic --synthetic-raters 20 --methods all+ --seeds 5 --out DIR
    python benchmarks/positive_control.py DIR [--raters 20]

Prints per method and dimension r (mean over seeds, and the min over seeds). Methods
fitted to rater spread must reach r >= 0.8; seeds, mc_dropout and the song-mean fits
(nll, nll_exact, beta_nll, evidential_mean) are not expected to (see docs/methods.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mer_uq import schema, sweep_folder
from mer_uq.metrics import pearson_r
from mer_uq.synthetic import TRUE_SD, make_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--raters", type=int, default=20, help="--synthetic-raters of the sweep")
    args = parser.parse_args()
    dataset, _ = make_synthetic(n_raters=args.raters)
    truth = dataset.songs.set_index("song_id")
    frames = [sweep_folder.read_trial_file(p)[0]
              for p in sweep_folder.trial_files(args.sweep_dir / sweep_folder.TRIALS_DIR)]
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows["split"] == "test"]
    print(f"{'method':<18} " + " ".join(f"{d + ' r':>12} {'min':>6}" for d in schema.DIMENSIONS))
    for method, group in rows.groupby("method", sort=False):
        cells = []
        for dim in schema.DIMENSIONS:
            per_seed = []
            for _, seed_rows in group.groupby("seed"):
                sigma = seed_rows[schema.PRED_SIGMA[dim]].to_numpy()
                if np.isfinite(sigma).all():
                    true = truth.loc[seed_rows["song_id"], TRUE_SD[dim]].to_numpy()
                    per_seed.append(pearson_r(true, sigma))
            cells.append(f"{np.mean(per_seed):>12.3f} {np.min(per_seed):>6.3f}" if per_seed
                         else f"{'n/a':>12} {'':>6}")
        print(f"{method:<18} " + " ".join(cells))


if __name__ == "__main__":
    main()
