"""Progress bars for the long steps (tokenising, bootstrap resamples, the data profile): on a
terminal only. A trial's process writes to its log file, and CI (or TQDM_DISABLE) asks for
quiet, so there a bar would only be noise."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def bars_wanted() -> bool:
    """A person is watching: stderr is a terminal, and neither CI nor TQDM_DISABLE is set."""
    if os.environ.get("CI") or os.environ.get("TQDM_DISABLE", "").lower() not in (
        "",
        "0",
        "false",
    ):
        return False
    return sys.stderr.isatty()


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """`items`, with a bar on stderr when a person is watching; otherwise exactly `items`."""
    if not bars_wanted():
        yield from items
        return
    from tqdm.auto import tqdm

    # disable=False: tqdm reads TQDM_DISABLE once, at import; the decision was made above.
    bar = tqdm(
        items, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True, disable=False
    )
    yield from bar


def chunks(n: int, size: int) -> list[slice]:
    """slices covering range(n) in pieces of `size`: the steps of a bar over vectorised work."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]
