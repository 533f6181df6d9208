"""Subnormal floats flushed to zero while a training run's epochs run (x86-64 Linux).

Float32 values below 1.18e-38 (subnormals) turn up in training as a matter of course: the
softmax of a confident output gives e^-90 for the other classes, their share of the
gradient is smaller still after the batch's 1/m, and Adam squares tiny gradients into its
second moment. x86 CPUs handle a subnormal operand or result in microcode, tens of times
slower than a normal float, so a network that has learned to be confident trains slower
than one that has not: on the 48 configurations of the digits sweep (bench/sweep.py) the
learning rate 3e-2 ran up to 1.7x slower per step than 1e-2 with the same shapes.

``flushed()`` sets the FTZ (results that would be subnormal are zero) and DAZ (subnormal
inputs read as zero) bits of the calling thread's MXCSR register, the SSE/AVX control
register that NumPy's loops and OpenBLAS's kernels run under, and restores them after, as
``torch.set_flush_denormal(True)`` does for a whole PyTorch process. The numbers change
only where a value was below 1.18e-38, far below a float32 weight's rounding: the 48
digits configurations end with bit-identical weights with and without it, 2-5% faster in
all (an interleaved A/B, min of 2 runs each), up to 1.7x on the confident ones.

Only the calling thread's register is set, and a thread started inside the region
inherits it. BLAS threads of their own (BLAS at more than one thread, started with NumPy)
keep the default and compute their share of a matrix product with subnormals as before,
so where subnormals occur a result can depend on the BLAS thread count. The diagnostics'
float32 squares of gradient entries below ~1e-19 are zero here (below ~4e-23 without
flushing). Elsewhere than x86-64 Linux with glibc this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import platform
import sys
from collections.abc import Iterator

FLUSH_BITS = 0x8040  # MXCSR: FTZ (bit 15) and DAZ (bit 6)
_MXCSR_OFFSET = 28  # of glibc's x86-64 fenv_t (32 bytes; fegetenv stores the register there)
_FENV_BYTES = 64  # room to spare over sizeof(fenv_t)


def _fenv_functions() -> tuple[object, object] | None:
    """glibc's fegetenv and fesetenv, or None where the MXCSR layout above does not hold."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    for name in (None, ctypes.util.find_library("m")):
        try:
            library = ctypes.CDLL(name)
            return library.fegetenv, library.fesetenv
        except (OSError, AttributeError):
            continue
    return None


_FENV = _fenv_functions()


def _mxcsr(env: ctypes.Array[ctypes.c_ubyte]) -> int:
    return int.from_bytes(bytes(env[_MXCSR_OFFSET : _MXCSR_OFFSET + 4]), "little")


def _set_flush_bits(bits: int) -> int:
    """Set this thread's FTZ and DAZ bits to ``bits`` (a part of FLUSH_BITS); returns
    those it had."""
    assert _FENV is not None
    get, put = _FENV
    env = (ctypes.c_ubyte * _FENV_BYTES)()
    if get(env) != 0:  # type: ignore[operator]
        raise OSError("fegetenv failed")
    register = _mxcsr(env)
    before = register & FLUSH_BITS
    register = (register & ~FLUSH_BITS) | bits
    env[_MXCSR_OFFSET : _MXCSR_OFFSET + 4] = list(register.to_bytes(4, "little"))
    if put(env) != 0:  # type: ignore[operator]
        raise OSError("fesetenv failed")
    return before


def available() -> bool:
    """Whether ``flushed()`` changes anything on this machine."""
    return _FENV is not None


@contextlib.contextmanager
def flushed() -> Iterator[None]:
    """Subnormals flushed to zero in this thread for the duration (see the module
    docstring); the thread's previous setting is restored after."""
    if _FENV is None:
        yield
        return
    try:
        before = _set_flush_bits(FLUSH_BITS)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        if before != FLUSH_BITS:
            _set_flush_bits(before)
