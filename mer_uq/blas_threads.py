"""One BLAS thread wherever numpy's BLAS makes a number that a report or a data summary
prints, so that the same sweep folder gives the same bits on any machine.

OpenBLAS multiplies matrices with a different kernel on one thread than on several, and
the last bit of a sum depends on it. Measured with numpy's OpenBLAS 0.3.31 on this
project's data: the split-half reliability's bootstrap products over DEAM's 1,744 songs
and the ridge probes' SVD give last-bit different numbers on 1 thread than on 2 (2, 4 and
8 threads agree with each other). How many threads OpenBLAS uses is not the sweep's
choice: it follows the machine's cores and whatever OPENBLAS_NUM_THREADS or
OMP_NUM_THREADS a SLURM job script, a Ray worker or a container sets (Ray sets
OMP_NUM_THREADS=1 for its workers). Left alone, a report rebuilt in a batch job could
differ from the laptop's in the 16th digit, and ``cmp`` of cells.csv, the project's
check that nothing moved, would fail for no reason.

One thread is the only count every machine has. It costs little here: the products that
matter are a few seconds at most, and the report runs its independent parts on its own
threads instead (analysis.compute.pipeline), which a multi-threaded BLAS would only
oversubscribe.

threadpoolctl sets the limit process-wide, not per thread: code that computes on several
threads takes the limit once around all of them (nested limits inside then restore one
thread, never the machine's default, so no thread sees the count change under it).
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    """A context manager under which numpy's BLAS runs on one thread (it takes effect when
    called, so call it in a ``with``, never as a decorator at import time)."""
    return threadpool_limits(limits=1, user_api="blas")
