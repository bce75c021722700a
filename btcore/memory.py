"""Memory: bytes of a dtype, the allocation budget checked before big tensors, allocator settings.

A leaf module (it imports nothing of btcore), so every layer of btcore can ask it before
allocating: specs, containers, ``matmul``, layers, fitting and loading.
"""

from __future__ import annotations

import ctypes

import torch

__all__ = ["DEFAULT_MAX_BYTES", "dtype_bytes", "format_bytes", "available_memory", "check_allocation",
           "keep_memory"]

#: Default limit on the bytes of a format's parameters (float32), checked on construction.
DEFAULT_MAX_BYTES = 2 * 1024**3


def dtype_bytes(dtype: torch.dtype | str = torch.float32) -> int:
    """Bytes per element of a torch dtype (``"float32"`` or ``torch.float32``)."""
    if isinstance(dtype, str):
        dt = getattr(torch, dtype, None)
        if not isinstance(dt, torch.dtype):
            raise ValueError(f"dtype: unknown torch dtype {dtype!r}; use e.g. 'float32' or 'float64'")
        dtype = dt
    return torch.empty((), dtype=dtype).element_size()


def format_bytes(n: float) -> str:
    """Human-readable byte count: ``format_bytes(3 * 1024**2) == '3.0 MiB'``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_memory(device: torch.device | str | None = None) -> int:
    """Bytes free for new tensors on ``device`` (CUDA: free device memory; CPU: MemAvailable)."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3  # no /proc (macOS, Windows): assume a modest machine


def check_allocation(nbytes: int, what: str, fix: str, device=None, fraction: float = 0.5) -> None:
    """Raise ``ValueError`` before allocating ``nbytes`` if it exceeds ``fraction`` of free memory.

    The one memory budget of btcore: :meth:`BTMatrix.random`, :meth:`TTMatrix.random`, ``to_dense``,
    ``matmul`` and the layers' constructors all ask it before allocating.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not nbytes >= 0:
        raise ValueError(f"nbytes must be a non-negative number of bytes, got {nbytes!r}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    free = available_memory(device)
    if nbytes > fraction * free:
        raise ValueError(
            f"{what} needs {format_bytes(nbytes)}, more than {fraction:.0%} of the {format_bytes(free)} free "
            f"on {torch.device(device or 'cpu')}; {fix}"
        )


def keep_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``threshold_bytes`` instead of returning them to the OS.

    Large intermediates are otherwise unmapped on free and page-faulted back on the next call
    (docs/reference.md, "y = x W without forming W": 137k minor faults per call, 11-22 ms spread
    across processes). This changes the whole process's allocator, so it is opt-in: the
    benchmarks and the training CLI call it. Returns False where glibc's ``mallopt`` is missing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_trim_threshold, int(threshold_bytes)) == 1
    return bool(ok and libc.mallopt(m_mmap_threshold, min(int(threshold_bytes), 1 << 25)) == 1)
