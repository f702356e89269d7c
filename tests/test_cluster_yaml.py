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


# --- cluster-onprem.yaml: the same checks, and the commands it shares with cluster.yaml ---

ONPREM_YAML = CLUSTER_YAML.with_name("cluster-onprem.yaml")
README = CLUSTER_YAML.with_name("README.md")
# The on-prem start commands are cluster.yaml's, plus these (why: comments in the file).
ACTIVATE = ". ~/mer-uq/.venv/bin/activate;"
ONPREM_ONLY = {"head_start_ray_commands": ("RAY_enable_autoscaler_v2=0", "--num-cpus=0"),
               "worker_start_ray_commands": ()}


def load_onprem() -> dict[str, Any]:
    return yaml.safe_load(ONPREM_YAML.read_text())


def test_onprem_yaml_passes_rays_launcher_schema() -> None:
    prepared = prepare_config(load_onprem())
    validate_config(prepared)
    assert prepared["max_workers"] == len(load_onprem()["provider"]["worker_ips"])


def test_onprem_installs_with_the_readme_commands_and_never_stops_ray() -> None:
    config = load_onprem()
    assert config["provider"]["type"] == "local"
    assert {"ssh_user", "ssh_private_key"} <= set(config["auth"])
    readme_install = README.read_text().split("\n\n    ")[1].split(" && python -m sweep.run")[0]
    assert readme_install.startswith("python3 -m venv .venv")
    setup = " ".join(config["setup_commands"])
    assert f"cd ~/mer-uq && {readme_install}" in setup
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert not any("ray stop" in c for c in config[key]), "ray stop on a shared host"
    assert config["file_mounts"] == load()["file_mounts"]
    assert config["rsync_exclude"] == load()["rsync_exclude"]


@pytest.mark.parametrize("key", sorted(ONPREM_ONLY))
def test_onprem_start_commands_are_the_aws_ones(key: str) -> None:
    aws = [c for c in load()[key] if c != "ray stop"]
    onprem = load_onprem()[key]
    assert len(aws) == len(onprem) == 1
    assert onprem[0].startswith(ACTIVATE)
    words = [w for w in onprem[0].removeprefix(ACTIVATE).split() if w not in ONPREM_ONLY[key]]
    assert words == aws[0].split()
    assert all(extra in onprem[0].split() for extra in ONPREM_ONLY[key])
