"""``python -m btcore.train`` and ``torchrun -m btcore.train``: the command line of :mod:`btcore.train.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
