"""Progress bars for long work: tqdm, switched off when stderr is not a terminal.

``progress=None`` (the default everywhere) means "show a bar when stderr is a
terminal"; ``True`` forces one, ``False`` hides it.
"""
from __future__ import annotations

import sys


def progress_bar(total=None, *, desc: str = "", unit: str = "it", progress=None, **kwargs):
    """A tqdm bar, or a silent stand-in with the same ``update``/``close`` API."""
    from tqdm.auto import tqdm

    if progress is None:
        disable = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    else:
        disable = not bool(progress)
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True,
                smoothing=0.1, **kwargs)
