"""Reading ``.npy`` / ``.npz`` array files with the declared size checked before any data is read.

A ``.npy`` header declares the array's shape and dtype; a small ``.npz`` (a zip, usually deflated)
can declare gigabytes. :func:`load_npy` and :func:`load_npz` read the header first and refuse an
array whose declared size is above a byte budget, so that a decompression bomb never reaches the
allocator. Pickled object arrays are never loaded (``allow_pickle=False``).
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .memory import format_bytes

__all__ = ["npy_header", "check_declared", "load_npy", "load_npz"]


def npy_header(fp) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) declared by the ``.npy`` header at ``fp``'s position; ``fp`` is left after it.

    Parameters
    ----------
    fp : binary file object
        Positioned at the start of a ``.npy`` stream.

    Returns
    -------
    (tuple of int, numpy.dtype)

    Raises
    ------
    ValueError
        When the stream does not start with a readable ``.npy`` header (version 1.0 or 2.0).
    """
    try:
        version = npy_format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(fp)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")
    except (ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a valid .npy header ({exc})") from None
    return tuple(int(n) for n in shape), dtype


def check_declared(shape, dtype: np.dtype, budget: int, where: str) -> int:
    """The declared byte size ``prod(shape) * itemsize``; ``ValueError`` above ``budget`` or for objects.

    Parameters
    ----------
    shape : tuple of int
    dtype : numpy.dtype
    budget : int
        Most bytes the array may declare.
    where : str
        What is being read (a file name), to start the message.

    Returns
    -------
    int
    """
    if dtype.hasobject:
        raise ValueError(f"{where} holds pickled Python objects, which are never loaded (unsafe); save a plain "
                         "numeric array with np.save")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > budget:
        dims = " x ".join(f"{n:,}" for n in shape) or "scalar"
        raise ValueError(f"{where} declares a {dims} array of {dtype} ({format_bytes(nbytes)} once read), above the "
                         f"{format_bytes(budget)} limit; save a smaller array")
    return nbytes


def _check_header(fp, budget: int, where: str) -> None:
    try:
        shape, dtype = npy_header(fp)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    check_declared(shape, dtype, budget, where)


def load_npy(source, budget: int, where: str) -> np.ndarray:
    """The array of a ``.npy`` file (a path or its bytes), its declared size checked against ``budget`` first.

    Parameters
    ----------
    source : path or bytes
    budget : int
        Most bytes the array may declare.
    where : str
        What is being read, to start messages.

    Returns
    -------
    numpy.ndarray
    """
    data = isinstance(source, (bytes, bytearray, memoryview))
    with (io.BytesIO(bytes(source)) if data else open(source, "rb")) as fp:
        _check_header(fp, budget, where)
        fp.seek(0)
        return np.load(fp, allow_pickle=False)


def load_npz(path: str | os.PathLike, budget: int, where: str) -> np.ndarray:
    """The first array of the ``.npz`` archive at ``path``, its declared size checked before it is inflated.

    ``budget`` and ``where`` as for :func:`load_npy`.
    """
    try:
        archive = zipfile.ZipFile(Path(path))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{where}: not a readable .npz archive ({exc})") from None
    with archive:
        members = [i for i in archive.infolist() if i.filename.endswith(".npy")]
        if not members:
            raise ValueError(f"{where}: the .npz archive is empty")
        with archive.open(members[0]) as fp:
            _check_header(fp, budget, where)
        with archive.open(members[0]) as fp:
            # read_array streams the member in bounded chunks into an array of the checked size
            return npy_format.read_array(fp, allow_pickle=False)
