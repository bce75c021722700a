"""The einsum index alphabet shared by the formats' tensor networks and the contraction schemes.

One letter per role, so every module that writes an einsum over a format's tensors agrees on
what each letter means: ``BATCH`` the rows of x, ``BLOCK`` the BT block, ``IN[k]`` / ``OUT[k]``
the input / output mode k, ``RANK[k]`` the rank of mode k (BT) or of bond k (TT). Eight letters
each, as the order d is at most 8.
"""

__all__ = ["BATCH", "BLOCK", "IN", "OUT", "RANK"]

BATCH = "b"
BLOCK = "n"
IN = "ABCDEFGH"
OUT = "IJKLMNOP"
RANK = "pqrstuvw"
