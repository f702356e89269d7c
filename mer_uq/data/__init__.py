"""The DEAM data layer (docs/data.md): songs, per-rater ratings, swap audit, genres and
splits, reliability ceilings, and feature tables. No orchestration framework here."""

from mer_uq.data.dataset import DeamDataset, load_deam
from mer_uq.data.errors import DeamDataError
from mer_uq.data.features import FeatureTable, load_features, save_features, standardise
from mer_uq.data.reliability import split_half_reliability
from mer_uq.data.summary import summarise
from mer_uq.data.swap import SwapAudit

__all__ = [
    "DeamDataError",
    "DeamDataset",
    "FeatureTable",
    "SwapAudit",
    "load_deam",
    "load_features",
    "save_features",
    "split_half_reliability",
    "standardise",
    "summarise",
]
