"""Orchestration of mer_uq on Ray: embedding extraction (Ray Data) and the method x seed
sweep with optional Optuna search (Ray Tune), W&B logging and the command-line tools."""
