"""The dense (I, J) matrix, the reference format."""

from __future__ import annotations

from ..indices import BATCH
from ..shapes import pair_modes
from .base import FormatSpec, Network

__all__ = ["DenseSpec", "dense_params"]


class DenseSpec(FormatSpec):
    """A dense (I, J) matrix, the reference format.

    Parameters
    ----------
    in_modes, out_modes : int or sequence of int
        Sizes, or modes whose products are the sizes (kept so dense and factorized formats can be
        described by the same arguments).
    """

    kind = "Dense"
    key = "dense"

    def __init__(self, in_modes, out_modes, *, in_size: int | None = None, out_size: int | None = None):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)

    @property
    def params(self) -> int:
        return self.in_size * self.out_size

    def network(self) -> Network:
        return Network(
            names=("x", "W"),
            terms=(BATCH + "A", "AI"),
            shapes=((-1, self.in_size), (self.in_size, self.out_size)),
            in_indices="A",
            out_indices="I",
            sizes=(("A", self.in_size), ("I", self.out_size)),
        )

    def __repr__(self) -> str:
        return f"DenseSpec(in_modes={self.in_modes}, out_modes={self.out_modes})"

    def __eq__(self, other) -> bool:
        return type(other) is DenseSpec and (self.in_size, self.out_size) == (other.in_size, other.out_size)

    def __hash__(self) -> int:
        return hash(("dense", self.in_size, self.out_size))


    def describe_ranks(self) -> str:
        return "full"


def dense_params(in_modes, out_modes) -> int:
    """Parameters of the dense (I, J) matrix: I * J."""
    return DenseSpec(in_modes, out_modes).params

