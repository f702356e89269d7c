"""The numbers numpy's BLAS makes for the report are the same bits whatever number of
threads the machine would give OpenBLAS (mer_uq.blas_threads).

Each test computes once with the process limited to one BLAS thread and once with two
(the counts a 1-core container or a job with OMP_NUM_THREADS=1, and any multi-core
machine, would use), on the bundled DEAM data, where the two kernels are known to differ
in the last bit without the pin: the split-half reliability's bootstrap products over all
songs, and the ridge probes' SVD."""

from __future__ import annotations

import pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits

from analysis.compute import ridge
from analysis.compute.baselines import compute_baselines
from mer_uq.blas_threads import one_blas_thread
from mer_uq.data import load_deam, load_features, standardise
from mer_uq.data.reliability import reliability_to_dict, split_half_reliability


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def _under(threads: int, fn, *args, **kwargs):
    with threadpool_limits(limits=threads, user_api="blas"):
        assert set(_blas_threads()) == {threads}
        return fn(*args, **kwargs)


def test_one_blas_thread_inside_and_the_caller_count_restored() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        with one_blas_thread():
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_reliability_same_bits_on_one_and_two_blas_threads() -> None:
    ratings = load_deam().ratings
    one = _under(1, split_half_reliability, ratings)
    two = _under(2, split_half_reliability, ratings)
    assert reliability_to_dict(one) == reliability_to_dict(two)


def test_baselines_same_bits_on_one_and_two_blas_threads() -> None:
    dataset = load_deam()
    table = standardise(load_features(), dataset.song_ids("train"))
    features = table.rows(dataset.songs["song_id"].to_numpy())
    one = _under(1, compute_baselines, dataset.songs, features)
    ridge._LAST_SVD.clear()  # the probes' SVD memo: make the second run factorise again
    two = _under(2, compute_baselines, dataset.songs, features)
    pd.testing.assert_frame_equal(one.predictions, two.predictions, check_exact=True)
    assert one.details == two.details
