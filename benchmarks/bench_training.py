"""Training speed: the project's loop against a bare PyTorch loop and the FLOP floor.

    python benchmarks/bench_training.py                 # everything (~10 min on one core)
    python benchmarks/bench_training.py --quick         # 10 epochs per trial, fewer keys
    python benchmarks/bench_training.py --keys nll student_t evidential mixture quantile \
        --stack-only                                    # stacked ms/model-step beside nll's

Measures, on ONE CPU thread (torch.set_num_threads(1)):

* floor: GFLOP/s of a large matmul; the FLOP floor of one training step is the step's
  matmul FLOPs (forward, weight gradients, input gradients of the hidden layers) at that
  rate;
* bare: a bare PyTorch loop of the paper's FCN (nn.Sequential, ELU, dropout 0.5, Adam,
  batch 32, Gaussian-NLL heads), ms per step;
* single: one paper trial (default TrainConfig: up to 100 epochs x 128 steps, early
  stopping) of each training key with one seed, ms per training step;
* stacked: K = 15 seeds of each key trained as one model for --stack-epochs epochs
  (default 10: the per-step cost does not depend on how long it runs), ms per model-step
  (wall time / (steps x K)), and that time as a multiple of 'nll''s ('x nll');
* peers (printed first; --peers-only stops there): ours stacked ('nll', K = 15, every
  member training every step) beside the two usual ways to train K models: the torch.func
  ensemble (stack_module_state + vmap(functional_call), one Adam over the stacked
  parameters) and K nn.Sequential models stepped one after another; ms per model-step
  and as ratios to the floor and to ours. All run with denormals flushed, as ours does.
  Two bounds sit beside them, because the FLOP floor (a large matmul's rate) is one that
  K small batched GEMMs cannot reach: 'kernels alone', the step's own kernels (the eight
  batched GEMMs, ELU and its backward, the dropout multiplies, the gather and the fused
  Adam step) each timed alone at the step's shapes with its operands hot, summed; and
  'step alone', our real step (`loss_and_grads` + `StackedAdam.step`) repeated on one
  batch, i.e. training without the epoch's data, masks and validation. vmap / kernels
  alone is the most that ANY loop over these kernels could beat the vmap peer by.

Inputs: the bundled openSMILE features (130-d) and random 1024-d features for the same
songs (MusicFM's width). Results print as a table and, with --json PATH, are saved.

Times are this process's CPU time (time.process_time), not wall time: on one thread they
agree on an idle machine, and on a shared one other processes do not inflate them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mer_uq.data import FeatureTable, load_deam, load_features, standardise
from mer_uq.methods import TRAININGS
from mer_uq.model import FCNConfig, StackedFCN
from mer_uq.training import (
    EpochDropout,
    StackedAdam,
    TrainConfig,
    TrainingData,
    cpu_threads,
    member_mean_gradient,
    train_stack,
    training_step,
)
from mer_uq.trial import training_targets

BATCH = 32
WIDTH = 128
ELU_BACKWARD = torch.ops.aten.elu_backward.default


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b
    started = time.process_time()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.process_time() - started) / 1e9


def step_flops(d_in: int, out: int = 4, width: int = WIDTH, depth: int = 2) -> float:
    """Matmul FLOPs of one training step of one model: forward (2 B fan_in fan_out per
    layer), weight gradients (same), input gradients of every layer but the first."""
    layers = [(d_in, width), *[(width, width)] * (depth - 1), (width, out)]
    macs = [fi * fo for fi, fo in layers]
    return 2 * BATCH * (2 * sum(macs) + sum(macs[1:]))


def bare_loop_ms(x: np.ndarray, t: np.ndarray, steps: int = 3000) -> float:
    """The reference: the FCN as anyone would write it in PyTorch."""
    torch.manual_seed(0)
    d = x.shape[1]
    net = _paper_fcn(d)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ts = torch.as_tensor(x), torch.as_tensor(t, dtype=torch.float32)
    loss_fn = nn.GaussianNLLLoss()

    def step() -> None:
        idx = torch.randint(0, len(xs), (BATCH,))
        out = net(xs[idx])
        mu = torch.tanh(out[:, :2])
        sigma = torch.exp(-nn.functional.softplus(out[:, 2:]))
        loss = loss_fn(mu, ts[idx, :2], sigma**2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(200):
        step()
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps * 1e3


def _paper_fcn(d: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d, WIDTH), nn.ELU(), nn.Dropout(0.5),
        nn.Linear(WIDTH, WIDTH), nn.ELU(), nn.Dropout(0.5),
        nn.Linear(WIDTH, 4),
    )  # fmt: skip


def _nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's NLL head on [.., 4] outputs (mu = tanh, log sigma = -softplus)."""
    mu = torch.tanh(out[..., :2])
    log_sigma = -nn.functional.softplus(out[..., 2:])
    return (0.5 * ((mu - target[..., :2]) / log_sigma.exp()) ** 2 + 0.5 * log_sigma).mean()


def vmap_peer_ms(x: np.ndarray, t: np.ndarray, k: int, steps: int) -> float:
    """The usual vectorised ensemble (torch.func): K nn.Sequential models stacked with
    stack_module_state, evaluated with vmap(functional_call), one Adam over the stacked
    parameters; per-member batches and dropout. ms per model-step."""
    from torch.func import functional_call, stack_module_state

    torch.manual_seed(0)
    models = [_paper_fcn(x.shape[1]) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = _paper_fcn(x.shape[1]).to("meta")
    opt = torch.optim.Adam(list(params.values()), lr=1e-3)
    xs, ts = torch.as_tensor(x), torch.as_tensor(t, dtype=torch.float32)

    def member_loss(p: dict, b: dict, xb: torch.Tensor, tb: torch.Tensor) -> torch.Tensor:
        return _nll(functional_call(base, (p, b), (xb,)), tb)

    batched = torch.vmap(member_loss, randomness="different")

    def step() -> None:
        idx = torch.randint(0, len(xs), (k, BATCH))
        loss = batched(params, buffers, xs[idx], ts[idx]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return _ms_per_model_step(step, steps, k)


def sequential_peer_ms(x: np.ndarray, t: np.ndarray, k: int, steps: int) -> float:
    """K separate nn.Sequential models and Adams, one after another every step."""
    torch.manual_seed(0)
    models = [_paper_fcn(x.shape[1]) for _ in range(k)]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    xs, ts = torch.as_tensor(x), torch.as_tensor(t, dtype=torch.float32)

    def step() -> None:
        for model, opt in zip(models, opts, strict=True):
            idx = torch.randint(0, len(xs), (BATCH,))
            loss = _nll(model(xs[idx]), ts[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return _ms_per_model_step(step, steps, k)


def _ms_per_model_step(step, steps: int, k: int) -> float:
    for _ in range(20):
        step()
    started = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - started) / steps / k * 1e3


def stacked_ms(data: TrainingData, k: int, epochs: int) -> float:
    """Ours: K seeds of 'nll' as one stacked model, every member training every step (no
    early stopping), ms per model-step."""
    cfg = TrainConfig(epochs=epochs, early_stopping_patience=epochs + 1, device="cpu")
    return trial_ms("nll", data, tuple(range(k)), cfg)["ms_per_model_step"]


def _stack_and_batch(data: TrainingData, k: int) -> tuple:
    """A K-member 'nll' stack of the paper's FCN, its optimiser, and one batch (inputs,
    targets, dropout masks) as a training step sees them."""
    model = StackedFCN(data.x_train.shape[1], FCNConfig(), True, tuple(range(k)))
    adam = StackedAdam(model.params.values)
    adam.set_member_lr(np.full(k, 1e-3))
    rows = torch.arange(k * BATCH) % len(data.x_train)
    x = torch.as_tensor(data.x_train, dtype=torch.float32)[rows].view(k, BATCH, -1)
    target = torch.as_tensor(data.t_train, dtype=torch.float32)[rows].view(k, BATCH, -1)
    masks = EpochDropout(model, 1, BATCH, torch.device("cpu")).step(0)
    return model, adam, x, target, masks


def kernels_alone_ms(data: TrainingData, k: int, repeats: int = 300) -> float:
    """The stacked step's own kernels, each timed alone at the step's shapes (operands hot
    in cache), summed: ms per model-step. The heads, the loss and its gradient (~45 small
    elementwise ops on [K, B, 2]) are left out, so no loop over these kernels beats it."""
    model, adam, x, _, masks = _stack_and_batch(data, k)
    weights, biases = model.weights, model.biases
    last = len(weights) - 1
    buffers = model._gradient_buffers()
    source = torch.as_tensor(data.x_train, dtype=torch.float32)
    rows = torch.randint(0, len(source), (k * BATCH,))
    with torch.no_grad(), cpu_threads(1):
        inputs, pre = [x], []
        for i in range(last):  # realistic operands: the forward pass's own activations
            pre.append(torch.baddbmm(biases[i], inputs[-1], weights[i]))
            inputs.append(F.elu(pre[-1]) * masks[i])
        grads = [torch.randn(k, BATCH, w.shape[2]) * 1e-3 for w in weights]
        runs = [lambda: source.index_select(0, rows)]
        for i in range(len(weights)):
            runs += [
                lambda i=i: torch.baddbmm(biases[i], inputs[i], weights[i]),
                lambda i=i: torch.bmm(inputs[i].transpose(1, 2), grads[i], out=buffers[2 * i]),
                lambda i=i: torch.sum(grads[i], 1, keepdim=True, out=buffers[2 * i + 1]),
            ]
            if i > 0:
                runs.append(lambda i=i: grads[i].bmm(weights[i].transpose(1, 2)))
            if i < last:
                runs += [
                    lambda i=i: F.elu(pre[i]),
                    lambda i=i: pre[i] * masks[i],  # forward
                    lambda i=i: pre[i] * masks[i],  # backward
                    lambda i=i: ELU_BACKWARD(grads[i], 1.0, 1, 1, False, pre[i]),
                ]
        runs.append(lambda: adam.step(buffers))
        return sum(_ms_per_model_step(run, repeats, k) for run in runs)


def step_alone_ms(data: TrainingData, k: int, repeats: int = 300) -> float:
    """Our training step (`mer_uq.training.training_step`, 'nll') repeated on one batch:
    ms per model-step, without the epoch's gathers, masks and validation."""
    model, adam, x, target, masks = _stack_and_batch(data, k)
    spec = TRAININGS["nll"]
    upstream = member_mean_gradient((k, BATCH, 2), x.device)
    with cpu_threads(1):
        return _ms_per_model_step(
            lambda: training_step(model, spec, adam, x, target, masks, upstream), repeats, k
        )


def peers(data: TrainingData, d: int, gflops: float, k: int, rounds: int) -> dict:
    """Ours, the torch.func vmap ensemble and the sequential loop, interleaved round by
    round (best of `rounds`), against the FLOP floor."""
    floor = step_flops(d) / (gflops * 1e9) * 1e3
    epochs = 3
    steps = epochs * TrainConfig().steps_per_epoch
    times: dict[str, list[float]] = {"kernels alone": [], "step alone (one batch)": [],
                                     "ours (stacked)": [], "torch.func vmap": [],
                                     "sequential nn.Sequential": []}
    for _ in range(rounds):
        times["kernels alone"].append(kernels_alone_ms(data, k))
        times["step alone (one batch)"].append(step_alone_ms(data, k))
        times["ours (stacked)"].append(stacked_ms(data, k, epochs))
        with cpu_threads(1):
            times["torch.func vmap"].append(vmap_peer_ms(data.x_train, data.t_train, k, steps))
            times["sequential nn.Sequential"].append(
                sequential_peer_ms(data.x_train, data.t_train, k, steps))
    best = {name: min(v) for name, v in times.items()}
    return {"floor_ms": floor, "k": k, "ms_per_model_step": best}


def print_peers(name: str, result: dict) -> None:
    floor, best = result["floor_ms"], result["ms_per_model_step"]
    ours = best["ours (stacked)"]
    print(f"\n{name}, K = {result['k']} seeds, 'nll', ms per model-step (best of the rounds):")
    print(f"{'':<26} {'ms':>7} {'x floor':>8} {'x ours':>7}")
    print(f"{'FLOP floor (large matmul)':<26} {floor:>7.3f} {1.0:>8.2f} {floor / ours:>7.2f}")
    for peer, ms in best.items():
        print(f"{peer:<26} {ms:>7.3f} {ms / floor:>8.2f} {ms / ours:>7.2f}")
    vmap, kernels = best["torch.func vmap"], best["kernels alone"]
    print(f"vmap / ours {vmap / ours:.2f}; vmap / kernels alone {vmap / kernels:.2f} (the most "
          f"any loop over these kernels could reach); ours / kernels alone {ours / kernels:.2f}")


def trial_ms(key: str, data: TrainingData, seeds: tuple[int, ...], cfg: TrainConfig) -> dict:
    started = time.process_time()
    trained = train_stack(key, seeds, data, FCNConfig(), cfg)
    seconds = time.process_time() - started
    steps = int(trained.epochs_trained.max()) * cfg.steps_per_epoch
    return {
        "training": key,
        "seeds": len(seeds),
        "epochs": int(trained.epochs_trained.max()),
        "seconds": round(seconds, 2),
        "ms_per_step": seconds / steps * 1e3,
        "ms_per_model_step": seconds / steps / len(seeds) * 1e3,
    }


def feature_sets() -> dict[str, FeatureTable]:
    bundled = load_features()
    rng = np.random.default_rng(0)
    wide = FeatureTable(
        bundled.song_ids, rng.standard_normal((len(bundled.song_ids), 1024)), "random1024"
    )
    return {"openSMILE 130-d": bundled, "random 1024-d": wide}


def training_data(dataset, features: FeatureTable, key: str) -> TrainingData:
    ids = {s: dataset.song_ids(s) for s in ("train", "valid")}
    standard = standardise(features, ids["train"])
    ratings = TRAININGS[key].individual_ratings  # a family head on raters reads them all
    return TrainingData(
        standard.rows(ids["train"]),
        training_targets(dataset, ids["train"], ratings),
        standard.rows(ids["valid"]),
        training_targets(dataset, ids["valid"], ratings),
    )


def single_vs_bare(data: TrainingData, rounds: int, epochs: int) -> tuple[float, float]:
    """Best-of-`rounds` ms per step of the bare loop and of our K = 1 training ('nll',
    same number of steps), interleaved so that both see the same machine load."""
    cfg = TrainConfig(epochs=epochs, early_stopping_patience=epochs + 1, device="cpu")
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(bare_loop_ms(data.x_train, data.t_train, steps=epochs * cfg.steps_per_epoch))
        ours.append(trial_ms("nll", data, (0,), cfg)["ms_per_step"])
    return min(bare), min(ours)


def stack_only(dataset, keys: list[str], k: int, cfg: TrainConfig, report: dict) -> None:
    """Each key's K-seed stack on the bundled features: ms per model-step and x nll."""
    features = load_features()
    rows = [trial_ms(key, training_data(dataset, features, key), tuple(range(k)), cfg)
            for key in keys]
    nll_ms = rows[0]["ms_per_model_step"]
    print(f"\nopenSMILE 130-d, K = {k} seeds stacked, {cfg.epochs} epochs:")
    print(f"{'training':<16} {'ms/model-step':>13} {'x nll':>6}")
    for row in rows:
        row["x_nll"] = row["ms_per_model_step"] / nll_ms
        print(f"{row['training']:<16} {row['ms_per_model_step']:>13.3f} {row['x_nll']:>6.2f}")
    report["stack_only"] = rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10-epoch trials, keys mean, nll")
    parser.add_argument("--keys", nargs="*", default=None, help="training keys (default all)")
    parser.add_argument("--stack", type=int, default=15, help="seeds in the stacked run")
    parser.add_argument("--stack-epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds, bare vs ours")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--stack-only", action="store_true",
                        help="only the stacked runs of --keys (nll added), ms/model-step "
                             "and x nll; no peers, no single-seed trials")
    parser.add_argument("--peers-only", action="store_true",
                        help="only ours vs the torch.func vmap ensemble and the sequential loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(cpu_threads=1, device="cpu")
    keys = args.keys or list(TRAININGS)
    if args.quick:
        cfg = replace(cfg, epochs=10)
        keys = args.keys or ["mean", "nll"]
    dataset = load_deam()
    gflops = max(matmul_gflops() for _ in range(3))
    report: dict = {"matmul_gflops_1thread": gflops, "config": cfg.__dict__, "sets": {}}
    print(f"large matmul, 1 thread: {gflops:.1f} GFLOP/s (best of 3)")
    if args.stack_only:
        stack_only(dataset, ["nll", *[k for k in keys if k != "nll"]], args.stack,
                   replace(cfg, epochs=args.stack_epochs), report)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
        return
    for name, features in feature_sets().items():
        floor_ms = step_flops(features.dim) / (gflops * 1e9) * 1e3
        base = training_data(dataset, features, "nll")
        report.setdefault("peers", {})[name] = peers(
            base, features.dim, max(gflops, matmul_gflops()), args.stack, args.rounds)
        print_peers(name, report["peers"][name])
        if args.peers_only:
            continue
        bare, ours = single_vs_bare(base, args.rounds, epochs=5)
        rows = []
        for key in keys:
            same = TRAININGS[key].targets == TRAININGS["nll"].targets
            same = same and not TRAININGS[key].individual_ratings
            data = base if same else training_data(dataset, features, key)
            single = trial_ms(key, data, (0,), cfg)
            stack_cfg = replace(cfg, epochs=args.stack_epochs)
            stacked = trial_ms(key, data, tuple(range(args.stack)), stack_cfg)
            rows.append({"single": single, "stacked": stacked})
        report["sets"][name] = {
            "floor_ms": floor_ms,
            "bare_ms": bare,
            "ours_k1_ms": ours,
            "trials": rows,
        }
        print(
            f"\n{name}: FLOP floor {floor_ms:.3f} ms/step; bare loop {bare:.3f} ms/step; "
            f"ours K=1 {ours:.3f} ms/step = {ours / bare:.2f} x bare (best of {args.rounds})"
        )
        # Each key's stacked ms per model-step beside nll's: what a loss costs over the
        # written-out Gaussian NLL (autograd, more outputs, every rating as a target).
        nll_ms = next((r["stacked"]["ms_per_model_step"] for r in rows
                       if r["single"]["training"] == "nll"), float("nan"))
        print(
            f"{'training':<16} {'epochs':>6} {'trial s':>8} {'ms/step':>8} {'x bare':>7} "
            f"{'K':>3} {'ms/model-step':>13} {'x floor':>8} {'x nll':>6}"
        )
        for row in rows:
            s, k = row["single"], row["stacked"]
            row["stacked"]["x_nll"] = k["ms_per_model_step"] / nll_ms
            print(
                f"{s['training']:<16} {s['epochs']:>6} {s['seconds']:>8.1f} "
                f"{s['ms_per_step']:>8.3f} {s['ms_per_step'] / bare:>7.2f} {k['seeds']:>3} "
                f"{k['ms_per_model_step']:>13.3f} {k['ms_per_model_step'] / floor_ms:>8.2f} "
                f"{k['x_nll']:>6.2f}"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
