"""Worker processes: quantize chunks in parallel and hand them back in order.

NumPy releases the GIL only inside each call, and the K-quant kernels make many short calls, so
processes scale where threads do not. ``jobs`` processes quantize: the parent itself and
``jobs - 1`` forked workers. The parent quantizes the next chunk whenever the oldest one a worker
holds is not ready yet, instead of sleeping; every process holds its own Python and NumPy (about
30 MB resident), so one process fewer is the largest cut in peak memory, at no measurable cost
in time. At most ``4 × jobs`` chunks are in flight, which bounds memory. The workers never
outlive the parent: they ignore Ctrl-C (the parent handles it and drains them), and they die
with the parent even when it is killed by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import numpy.typing as npt

from qconv import quant
from qconv.errors import QconvError, QuantizationError, UsageError
from qconv.plan.plan import TensorPlan
from qconv.signals import STOPPING, heeded_signals
from qconv.source.gguf import GGUFTensor

__all__ = ["Chunk", "check_jobs", "chunk_results", "convert_chunk", "default_jobs", "max_jobs"]

# (plan index, first row, end row, first column, end column). A chunk is whole rows, or one
# piece of a single row that is longer than CHUNK_BYTES; a piece is whole blocks, since blocks
# never cross a row, so memory stays flat even for a 1 × 50,000,000 tensor.
Chunk = tuple[int, int, int, int, int]


def convert_chunk(
    plan: TensorPlan, start: int, stop: int, col_start: int = 0, col_stop: int | None = None
) -> npt.NDArray[np.uint8]:
    """Rows ``start:stop`` (within one expert's matrix; columns ``col_start:col_stop``) of a
    tensor, read, checked and quantized. A GGUF tensor that keeps its type is copied as stored."""
    if col_stop is None or (col_start == 0 and col_stop == plan.shape[-1]):
        if isinstance(plan.data, GGUFTensor) and plan.data.qtype == plan.qtype:
            return np.array(plan.data.raw_rows(start, stop))
        rows = plan.data.read_rows(start, stop)
    elif isinstance(plan.data, GGUFTensor) and plan.data.qtype == plan.qtype:
        return np.array(plan.data.raw_row_part(start, col_start, col_stop))
    else:
        rows = plan.data.read_row_part(start, col_start, col_stop)
    finite = np.isfinite(rows)
    if not finite.all():
        row, col = (int(i[0]) for i in np.nonzero(~finite))
        raise QuantizationError(
            f"tensor {plan.data.name!r}: element [{start + row}, {col_start + col}] is "
            f"{rows[row, col]}; the checkpoint holds non-finite weights (corrupt or overflowed); "
            "refusing to write them"
        )
    if plan.importance is None:
        return quant.quantize(rows, plan.qtype)
    return quant.quantize(rows, plan.qtype, plan.importance[start // plan.rows_per_matrix])


_worker_plans: Sequence[TensorPlan] = ()
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(plans: Sequence[TensorPlan], parent: int) -> None:
    global _worker_plans
    _worker_plans = plans
    # Ctrl-C reaches the whole process group: the parent handles it and drains the workers.
    # SIGTERM and SIGHUP get their default back (fork copied the CLI's handlers): the pool itself
    # stops a broken pool's workers with SIGTERM. One the parent ignores (the process was started
    # ignoring it, as under nohup) stays ignored, or it would kill the workers under a live run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in heeded_signals():  # SIGINT is ignored by now
        signal.signal(signum, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # blocked since the fork (_signals_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING)
    _die_with_parent(parent)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP pending while the workers are forked.

    A worker starts with a copy of the CLI's handlers, which raise and print a traceback; a
    signal sent to the process group just after the fork would reach it before _init_worker
    resets them. Blocked, the signal waits in the worker until then and in the parent until
    this block ends, and each then handles it as usual.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _die_with_parent(parent: int) -> None:
    """End this worker when the parent ends, even by SIGKILL; else it would wait forever.

    Linux delivers PR_SET_PDEATHSIG when the parent dies; elsewhere a daemon thread polls the
    parent pid. Either way the pid is checked once more, in case the parent died before this ran.
    """
    armed = False
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _worker_chunk(chunk: Chunk) -> npt.NDArray[np.uint8]:
    index, start, stop, col_start, col_stop = chunk
    return convert_chunk(_worker_plans[index], start, stop, col_start, col_stop)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def max_jobs() -> int:
    """The most worker processes qconv starts: 4 × the usable cores (more only adds memory)."""
    return 4 * default_jobs()


def check_jobs(jobs: int | None) -> int:
    """The number of processes that quantize for ``jobs`` (None: all cores), the parent included.

    Raises:
        UsageError: ``jobs`` is below 1 or above :func:`max_jobs`.
    """
    if jobs is None:
        return default_jobs()
    if not 1 <= jobs <= max_jobs():
        raise UsageError(
            f"--jobs {jobs}: give 1 to {max_jobs()} (4 × the {default_jobs()} usable cores)"
        )
    return jobs


@contextlib.contextmanager
def chunk_results(
    plans: Sequence[TensorPlan], chunks: Sequence[Chunk], jobs: int | None
) -> Iterator[Iterator[npt.NDArray[np.uint8]]]:
    """Quantized chunks in order: inline for one job, else shared between the parent and
    ``jobs - 1`` worker processes.

    At most ``4 × jobs`` chunks are in flight, which bounds memory. On any error, Ctrl-C or
    termination signal the queued chunks are cancelled and the running ones (at most one per
    worker, each well under a second) are drained with Ctrl-C deferred, so a second Ctrl-C can
    neither abandon the pool half shut down nor leave a worker behind. The workers are not
    killed: one killed while it writes a result leaves the result pipe torn, and CPython's pool
    then waits on it forever.
    """
    jobs = min(check_jobs(jobs), len(chunks))
    if jobs <= 1:
        yield (_worker_chunk_here(plans, chunk) for chunk in chunks)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    executor = ProcessPoolExecutor(
        jobs - 1,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(plans, os.getpid()),
    )
    try:
        yield _shared(executor, plans, chunks, jobs - 1)
    except BaseException:
        with _ctrl_c_deferred():
            executor.shutdown(wait=True, cancel_futures=True)
        raise
    with _signals_deferred():
        executor.shutdown(wait=True)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Ignore Ctrl-C for the duration (main thread only; elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while concurrent.futures works, then deliver them.

    A handler that raises (the CLI's) would raise inside the pool's locks and conditions, where
    an exception between acquiring and releasing can leave one held, and the shutdown that
    follows then waits on it forever. Here the signals are only noted and raised again when the
    block ends, for whichever handler was in place to act on at a safe point. Blocks are short:
    bookkeeping, or waiting for one chunk (well under a second).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda n, _: caught.append(n)) for signum in heeded_signals()
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored from here
                signal.signal(signum, handler)
        for pending in dict.fromkeys(caught):
            signal.raise_signal(pending)


def _shared(
    executor: ProcessPoolExecutor,
    plans: Sequence[TensorPlan],
    chunks: Sequence[Chunk],
    workers: int,
) -> Iterator[npt.NDArray[np.uint8]]:
    """Each chunk's result in order. Up to ``2 × workers`` chunks wait in the pool; while the
    oldest is not ready the parent quantizes the next chunk itself, as long as fewer than
    ``4 × (workers + 1)`` results are held. The share each side takes follows their speed (the
    parent also writes); the order of the results never depends on it.

    The window is what lets the parent run ahead: at 2 × (workers + 1) it often stood waiting
    for the worker with the window full of its own results (1.77 cores busy on the 32-expert
    q4_k_m bench, 1.85 at 4 ×); a deeper pool queue (4 × workers) was slower. Held results are
    quantized bytes, a few MB at most for the window."""
    window, depth = 4 * (workers + 1), 2 * workers
    held: deque[Future[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8]] = deque()
    queued = following = 0  # futures in ``held``; index of the next chunk not yet handed out
    try:
        while held or following < len(chunks):
            with _signals_deferred():
                while queued < depth and following < len(chunks) and len(held) < window:
                    # The first submit forks the workers (all of them, for the fork method).
                    with _signals_blocked() if following == 0 else contextlib.nullcontext():
                        held.append(executor.submit(_worker_chunk, chunks[following]))
                    following, queued = following + 1, queued + 1
                head = held[0]
                waiting = isinstance(head, Future) and not head.done()
            if waiting and following < len(chunks) and len(held) < window:
                held.append(_worker_chunk_here(plans, chunks[following]))
                following += 1
                continue
            held.popleft()
            if isinstance(head, Future):
                queued -= 1
                with _signals_deferred():
                    result = head.result()
                yield result
            else:
                yield head
    except BrokenProcessPool as e:
        raise QconvError(
            "a worker process died (killed by a signal, or by the system for lack of memory; "
            "try fewer --jobs); no output file was written"
        ) from e


def _worker_chunk_here(plans: Sequence[TensorPlan], chunk: Chunk) -> npt.NDArray[np.uint8]:
    """One chunk quantized in this process: the parent's share, or every chunk with one job (the
    workers run _worker_chunk)."""
    index, start, stop, col_start, col_stop = chunk
    return convert_chunk(plans[index], start, stop, col_start, col_stop)
