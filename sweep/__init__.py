"""Orchestration of mer_uq on Ray: embedding extraction (Ray Data) and the method x seed
sweep with optional Optuna search (Ray Tune), W&B logging and the command-line tools.

Importing this package fixes Ray's start-up environment (usage statistics off, token
authentication explicit; see sweep.ray_runtime). It happens here, as early as possible:
Ray reads RAY_AUTH_MODE once, when it is first imported, and a process whose Ray saw a
different mode than the processes it starts cannot talk to them.
"""

from sweep.ray_runtime import apply_ray_env_defaults

apply_ray_env_defaults()
