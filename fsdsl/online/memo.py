"""What a long-lived process derives from a view once, not per batch.

A stream worker refreshes the same views, as the same `ir.View` objects, several times a
second; their fingerprint, state layout and compile key are each a walk of the whole definition
(milliseconds a view). Views are frozen, so a value derived from one object stays right for
it. The memo is keyed by the object itself, not by equality: hashing or comparing a view walks
it too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SIZE = 256  # views of a few repositories: a process that reloads its definitions often


def per_view(fn: Callable[[object], T]) -> Callable[[object], T]:
    """`fn(view)`, computed once per view object (the value must not be mutated)."""
    memo: dict[int, tuple[object, T]] = {}

    @functools.wraps(fn)
    def wrapper(view):
        hit = memo.get(id(view))
        if hit is not None and hit[0] is view:  # held below: its id is not reused meanwhile
            return hit[1]
        value = fn(view)
        memo.pop(id(view), None)
        if len(memo) >= SIZE:  # rare: start over (no iteration another thread could upset)
            memo.clear()
        memo[id(view)] = (view, value)
        return value

    return wrapper
