"""cluster.yaml against Ray's own cluster-launcher schema, offline (no cloud calls), plus
the properties the docs promise: GPU workers, this package installed, one auth mode."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


def load() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_launcher_schema() -> None:
    validate_config(prepare_config(load()))


def test_the_schema_check_rejects_a_broken_config() -> None:
    broken = copy.deepcopy(load())
    broken["available_node_types"]["worker.gpu"]["min_workers"] = "one"
    with pytest.raises(Exception, match=r"min_workers|one"):
        validate_config(prepare_config(broken))
    broken = copy.deepcopy(load())
    broken["head_node_type"] = "no.such.type"
    with pytest.raises(ValueError):
        validate_config(prepare_config(broken))


def test_gpu_workers_install_this_package_with_one_auth_mode() -> None:
    config = load()
    assert config["provider"]["type"] == "aws"
    worker = config["available_node_types"]["worker.gpu"]
    assert worker["node_config"]["InstanceType"].startswith(("g4dn", "g5", "g6", "p3", "p4"))
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "mer-uq[" in setup
    assert config["file_mounts"]["~/mer-uq"] == "."
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        start = " ".join(commands)
        assert "RAY_AUTH_MODE=token" in start and "RAY_USAGE_STATS_ENABLED=0" in start
    assert "~/.ray/auth_token" in config["file_mounts"]
