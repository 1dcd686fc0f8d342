"""The thread policy: one intra-op thread per process on the CPU, parallelism by processes.

On the 2-core machines this project runs on, one thread runs at the same speed whether the machine
is idle or busy, while two OpenMP threads in one process swing by 4×: on an idle AMD EPYC they are
1.2–1.8× faster than one, but beside any other busy process they are 2.3–3.6× slower (they spin and
wait for each other; docs/benchmarks.md, "Threads, precision and share of peak"; the Intel Xeon
measurements of issue 31 found two threads slower even on a lightly shared machine). So each process
computes on **one** thread by default, and the machine's cores are used by processes: the
data-loader worker beside a training, ``l2l experiment run --jobs N``, ``--shard i/n`` for prior and
Pseudo-RIS generation, ``pytest -n``. One job alone on an idle machine gains from ``--threads 2``.

The count, first that is set:

1. ``--threads N`` on any ``l2l`` command (or ``threads: N`` in a training config);
2. the environment variable ``L2L_THREADS``;
3. ``OMP_NUM_THREADS``, when the user set it;
4. 1.

``OMP_WAIT_POLICY=PASSIVE`` is set too (unless the user set it): a thread that waits sleeps instead
of spinning (two threads beside a busy process: 1.9× faster than spinning, still slower than one). It is read
when the OpenMP runtime starts, so :func:`prepare_environment` runs before torch is imported (the
``l2l`` entry point does that); child processes inherit it and the count.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from ..errors import UsageError

ENV = "L2L_THREADS"
DEFAULT = 1


def parse_threads(value: object, where: str) -> int:
    """A thread count ≥ 1 from ``where`` (an option, an environment variable, a config key)."""
    if isinstance(value, bool):
        raise UsageError(f"{where}: expected a whole number of threads ≥ 1, got {value!r}")
    try:
        n = int(str(value).strip())
    except ValueError:
        raise UsageError(f"{where}: expected a whole number of threads ≥ 1, got {value!r}") from None
    if n < 1:
        raise UsageError(f"{where}: expected a whole number of threads ≥ 1, got {n}")
    return n


def policy_threads(requested: int | None = None) -> int:
    """The thread count the policy gives (see the module docstring for the order)."""
    if requested:
        return parse_threads(requested, "--threads")
    for name in (ENV, "OMP_NUM_THREADS"):
        if os.environ.get(name, "").strip():
            return parse_threads(os.environ[name], name)
    return DEFAULT


def prepare_environment(requested: int | None = None) -> int:
    """Set the policy in the environment (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``L2L_THREADS``,
    ``OMP_WAIT_POLICY``) for this process's OpenMP runtime, when torch is not loaded yet, and for every
    child process. Returns the count."""
    n = policy_threads(requested)
    for name in (ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return n


def apply(requested: int | None = None) -> int:
    """The policy for this process: the environment (:func:`prepare_environment`), then torch's
    intra-op pool set to the count and its inter-op pool to one thread (possible only before the
    first inter-op work; later calls leave it). Returns the count."""
    n = prepare_environment(requested)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already started: it stays as it is
            pass
    return n


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore; 0 = the process's thread policy as it is
    (utils/threads.py: one thread unless --threads / $L2L_THREADS say otherwise)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def restored() -> Iterator[None]:
    """Run the block, then put back the policy's environment variables and torch's thread count as
    they were (``l2l.cli.main`` called from Python: a test's ``--threads 2`` does not leak into the next)."""
    names = (ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")
    env = {k: os.environ.get(k) for k in names}
    before = sys.modules["torch"].get_num_threads() if torch_loaded() else None
    try:
        yield
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if before is not None and sys.modules["torch"].get_num_threads() != before:
            sys.modules["torch"].set_num_threads(before)


def threads_from_argv(argv: list[str]) -> int | None:
    """``--threads N`` / ``--threads=N`` in a command line, read before it is parsed (and before torch is
    imported, so that the OpenMP runtime starts with the policy); None when absent."""
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--threads" and i + 1 < len(argv):
            return parse_threads(argv[i + 1], "--threads")
        if a.startswith("--threads="):
            return parse_threads(a.split("=", 1)[1], "--threads")
    return None


def torch_loaded() -> bool:
    return "torch" in sys.modules
