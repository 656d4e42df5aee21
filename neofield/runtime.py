"""How the model runs fast on the machine at hand: precision and float modes.

Kept out of the model and the loops so that both the fit and the decoder make
the same choices, and so that a test can compare the fast path to the plain
one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch

from .options import COMPILE_MODES, PRECISIONS  # noqa: F401  (re-exported)

_flushing = 0  # depth of nested flush_denormals blocks: a decode inside a fit must not switch it off


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero while the block runs (the CPU's FTZ/DAZ modes).

    A fitted NeoMLP sends many GELU inputs far below zero, whose outputs and
    gradients land in the subnormal range, where x86 CPUs take a slow microcode
    path per operation: on the demo field this alone made decoding 1.8x slower.
    Values under 1.2e-38 change nothing visible in a field whose outputs are
    8-bit pixels or 16-bit samples. Blocks nest; the outermost switches the
    mode off again at its end (torch has no getter for a previous mode).
    """
    global _flushing
    # returns False (and changes nothing) on CPUs without the modes
    supported = torch.set_flush_denormal(True) if _flushing == 0 else True
    _flushing += 1
    try:
        yield
    finally:
        _flushing -= 1
        if _flushing == 0 and supported:
            torch.set_flush_denormal(False)


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels here (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bfloat16 on CUDA and on CPUs with native bfloat16, float32 elsewhere.

    The weights, the optimiser and the loss stay float32; only the matmuls and
    the activations between them drop to bfloat16. At equal fitting time on
    our AVX-512 BF16 CPUs this gained 0.6 dB on the demo clip and 0.95 dB on
    Bach (docs/cpu-defaults.md); a CPU that would emulate bfloat16 keeps float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bfloat16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else "float32"
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision for the model's matmuls, or nothing for float32."""
    if resolve_precision(precision, device) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def intra_op_threads() -> int:
    """The intra-op threads, a constant to torch.compile once :func:`compiled` has marked it so:
    ``torch.get_num_threads()`` traced inline breaks the graph, and inside the pyramids' loop the whole read fell
    back to eager (a compiled video-with-sound fit then ran half the steps of an eager one)."""
    return torch.get_num_threads()


def compiled(module: Callable, **options) -> Callable:
    """``torch.compile(module, dynamic=False)``, with :func:`intra_op_threads` marked as a constant first.

    Marked here and not where it is defined: marking imports torch._dynamo (~1 s, sympy with it), which a
    decode that never compiles, or a command that stops at a bad option, would pay for nothing."""
    torch.compiler.assume_constant_result(intra_op_threads)
    return torch.compile(module, dynamic=False, **options)


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can build kernels here: a C++ compiler on CPU, Triton on CUDA.

    Users' machines often lack one (a slim container, Windows without MSVC), and
    inductor would then fail at the first step, after its tracing time was spent.
    """
    try:
        if device.type == "cuda":
            import triton  # noqa: F401
            return True
        from torch._inductor.cpp_builder import get_cpp_compiler
        return bool(get_cpp_compiler())
    except Exception:  # the probe is private API: any failure means "no"
        return False
