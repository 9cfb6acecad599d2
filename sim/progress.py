"""Progress bars with an ETA on stderr, shown only when asked for.

Long steps (the format search, the Verilator build, the simulation) take a ``progress`` flag: off
by default, so tests and logs stay clean; ``python -m inrarch.build`` turns it on when stderr is a
terminal. Every bar counts real work (trials, compiler runs, words), never time alone.
"""

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(description, total=None, *, enabled, unit="it"):
    """A tqdm bar on stderr counting ``unit`` up to ``total``; it prints nothing unless ``enabled``.

    ``total`` may change while the bar runs (set ``bar.total`` and call ``bar.refresh()``) when
    only an upper bound is known at first.
    """
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)
