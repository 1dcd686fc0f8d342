"""Which precision a training computes in: the ``amp`` switch (``auto`` | ``bf16`` | ``off``).

``bf16`` is autocast for the forward pass (and so for the backward, which follows the forward's
dtypes) with fp32 master weights and an fp32 optimiser, on a GPU and on a CPU alike. On a CPU it is
only offered where the hardware computes bf16 natively — Intel AMX or AVX-512 BF16, detected through
torch's own checks, never assumed; elsewhere oneDNN would emulate it, slower than fp32, and
``amp=bf16`` is refused with the reason.

``auto`` is bf16 on a GPU that supports it and fp32 on a CPU: on the AVX-512 BF16 CPU measured
(docs/benchmarks.md, "Threads, precision and share of peak", table 4) bf16 autocast made the
supervised and L2L steps slower (0.85×, 0.91×) and FixMatch's no faster (1.04×) — the models are
narrow (32–192 channels), and the casts around every convolution cost about what the bf16 kernels
save. AMX was not measured. The exact-resume and DDP equivalence tests run in fp32.
"""

from __future__ import annotations

import torch

from ..errors import UsageError

AMP_CHOICES = ("auto", "bf16", "off")


def cpu_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and what it has (or lacks), in words."""
    try:
        amx = bool(torch.cpu._is_amx_tile_supported())
        avx512 = bool(torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # a torch without the checks: say no rather than guess
        return False, "this torch build cannot tell whether the CPU has AMX or AVX-512 BF16"
    if amx:
        return True, "AMX"
    if avx512:
        return True, "AVX-512 BF16"
    return False, f"this CPU has neither AMX nor AVX-512 BF16 (vector unit: {torch.backends.cpu.get_cpu_capability()})"


def use_bf16(amp: str, device: str) -> bool:
    """Resolve ``amp`` for ``device``; ``amp=bf16`` where the hardware lacks it is a :class:`UsageError`."""
    if amp not in AMP_CHOICES:
        raise UsageError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if amp == "off":
        return False
    gpu = str(device).startswith("cuda")
    if gpu:
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if amp == "bf16" and not ok:
            raise UsageError(f"amp=bf16: the GPU of device {device!r} does not support bf16; use amp=off")
        return ok
    if amp == "auto":
        return False  # measured slower on the CPUs we have (module docstring)
    ok, what = cpu_bf16()
    if not ok:
        raise UsageError(f"amp=bf16 on the CPU: {what}, so bf16 would be emulated (slower than fp32); use amp=off")
    return True
