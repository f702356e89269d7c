"""The settings of a trial's model and optimisation, importable without torch.

Why a module of its own: the sweep's driver validates these settings (flags, --config,
--resume records) and never trains, so it should not pay torch's import (~2 s) for them.
`mer_uq.model` and `mer_uq.training` use them and export them under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

# MC-dropout passes per prediction (TrialSpec.mc_passes' default).
DEFAULT_MC_PASSES = 100

# Dropout draws one random byte per unit: a unit is dropped when the byte < round(p * 256).
# Bulk bytes from the member's numpy stream are ~10x cheaper than torch.rand, which matters
# because mask generation would otherwise cost as much as the matmuls.
DROPOUT_RESOLUTION = 256


@dataclass(frozen=True)
class FCNConfig:
    """Shape of the FCN; defaults are the paper's (2 x 128, ELU, dropout 0.5).

    The dropout probability is realised as a multiple of 1/256 (0.5 exactly; 0.3 becomes
    77/256 = 0.3008), and kept units are scaled by 1 / (1 - realised p), so the expected
    activation is exactly preserved.
    """

    hidden_width: int = 128
    depth: int = 2
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.hidden_width < 1 or self.depth < 1:
            raise ValueError(
                f"FCNConfig needs hidden_width >= 1 and depth >= 1, got {self.hidden_width}, "
                f"{self.depth}"
            )
        if not 0.0 <= self.dropout < 1.0 or round(self.dropout * DROPOUT_RESOLUTION) >= 256:
            raise ValueError(f"FCNConfig.dropout must be in [0, 255/256], got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; every default is the paper's except where noted.

    epochs: the most epochs (training usually stops earlier);
    steps_per_epoch: batches per epoch (the paper: 128 batches of 32 songs);
    patience: epochs without validation improvement before the lr is multiplied by
        lr_factor (ReduceLROnPlateau), never below min_lr;
    early_stopping_patience: epochs without validation improvement before a member stops
        (the paper gives no number; 10 is ours);
    device: 'auto' = CUDA when present, else CPU; or any torch device name.
    cpu_threads: torch CPU threads while training (restored afterwards); 0 leaves torch's
        setting. Default 1: the FCN's matrices are too small to gain from threads, and on
        a busy machine several OpenMP threads per trial contend (measured: 50x slower).
    """

    epochs: int = 100
    steps_per_epoch: int = 128
    batch_size: int = 32
    lr: float = 1e-3
    patience: int = 3
    lr_factor: float = 0.9
    min_lr: float = 1e-5
    early_stopping_patience: int = 10
    device: str = "auto"
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        positive = ("epochs", "steps_per_epoch", "batch_size", "lr", "early_stopping_patience")
        bad = [name for name in positive if not getattr(self, name) > 0]
        if bad:
            raise ValueError(f"TrainConfig: {', '.join(bad)} must be > 0")
        if not 0.0 < self.lr_factor < 1.0:
            raise ValueError(f"TrainConfig.lr_factor must be in (0, 1), got {self.lr_factor}")
        if self.patience < 0 or self.min_lr < 0 or self.cpu_threads < 0:
            raise ValueError("TrainConfig: patience, min_lr and cpu_threads must be >= 0")

    @property
    def runtime_fields(self) -> tuple[str, ...]:
        """Fields that choose where training runs, not what it computes."""
        return ("device", "cpu_threads")
