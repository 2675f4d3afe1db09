"""W0002: a feature whose name names a window its aggregations do not use (`orders_7d = count(*)
over 30d`): whoever picks it from a catalogue by its name gets another number than they think.

A window in a name is a number and a unit standing as one part of a snake_case name: `_1h`,
`_30d`, `_2w`, `_90_days`, `_7day`, `_15min`; months and years (`_3mo`, `_1y`) only up to their
varying length (28 to 31 days, 365 or 366). The name agrees when any such part equals any window
the feature uses, derived features through what they read (`ratio_7d = spend_7d / spend_30d`
agrees), or the view's TTL (under `ttl 60d`, `last(x)` is the last value of the last 60 days).
A name can also carry a number and a unit that are not a window (`long_views_30s_7d`): one
agreeing part is enough, so only names none of whose windows fit are reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fsdsl import ir
from fsdsl.diagnostics import Diagnostic, Severity
from fsdsl.lint import Rule, expressions, name_span, written_views

_DAY = 86400
# unit spelling -> (shortest, longest) length in seconds of one unit
_UNITS: dict[str, tuple[int, int]] = {}
for _names, _lo, _hi in (
    (("s", "sec", "secs", "second", "seconds"), 1, 1),
    (("m", "min", "mins", "minute", "minutes"), 60, 60),
    (("h", "hr", "hrs", "hour", "hours"), 3600, 3600),
    (("d", "day", "days"), _DAY, _DAY),
    (("w", "wk", "wks", "week", "weeks"), 7 * _DAY, 7 * _DAY),
    (("mo", "mon", "month", "months"), 28 * _DAY, 31 * _DAY),
    (("y", "yr", "yrs", "year", "years"), 365 * _DAY, 366 * _DAY),
):
    _UNITS.update(dict.fromkeys(_names, (_lo, _hi)))

# a part of the name: digits, an optional `_`, a unit; bounded by `_` or the name's ends
_WINDOW_IN_NAME = re.compile(
    r"(?:^|(?<=_))([0-9]+)_?(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")(?=_|$)"
)


def windows_in_name(name: str) -> list[tuple[re.Match[str], int, int]]:
    """Each window a name states, with the range of seconds it allows."""
    out = []
    for m in _WINDOW_IN_NAME.finditer(name.lower()):
        lo, hi = _UNITS[m.group(2)]
        n = int(m.group(1))
        if n > 0:
            out.append((m, n * lo, n * hi))
    return out


def feature_windows(view: ir.View) -> dict[str, dict[int | None, str]]:
    """Each feature's windows, in seconds (None: an aggregation without a window) with how one
    was written, derived features through the features they reference."""
    done: dict[str, dict[int | None, str]] = {}
    nodes, derived = expressions(view)
    late = {f.name for f in derived}
    for f in view.features:
        if f.name not in late:
            done[f.name] = _windows(nodes[f.name], done)
    for f in derived:  # each after what it references
        done[f.name] = _windows(nodes[f.name], done)
    return done


def _windows(nodes: Iterable[ir.Expr], done: dict[str, dict[int | None, str]]):
    found: dict[int | None, str] = {}
    for node in nodes:
        if isinstance(node, ir.Aggregate):
            w = node.window
            found.setdefault(w.seconds if w else None, str(w) if w else "")
        elif isinstance(node, ir.FeatureRef):
            for k, v in done[node.name].items():
                found.setdefault(k, v)
    return found


def _duration(seconds: int) -> str:
    """`seconds` as the language writes a duration, in the largest unit that divides it."""
    for unit in ("w", "d", "h", "m"):
        if seconds % ir.UNIT_SECONDS[unit] == 0:
            return f"{seconds // ir.UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


class NameContradictsWindow(Rule):
    """A feature's name states a window (`orders_7d`) that none of its aggregations uses."""

    code = "W0002"
    name = "name-contradicts-window"

    def check(self, repo: ir.Repository) -> Iterable[Diagnostic]:
        for view in written_views(repo):
            named = {f.name: w for f in view.features if (w := windows_in_name(f.name))}
            if not named:
                continue
            windows = feature_windows(view)
            ttl = view.ttl.seconds if view.ttl is not None else None
            for f in view.features:
                stated = named.get(f.name)
                if not stated:
                    continue
                used = windows[f.name]
                fits = {s for s in used if s is not None} | ({ttl} if ttl else set())
                if any(lo <= s <= hi for _, lo, hi in stated for s in fits):
                    continue
                m = stated[0][0]
                said = m.group(0)
                spans = sorted((s, t) for s, t in used.items() if s is not None)
                if spans:
                    has = "aggregates over " + " and ".join(t for _, t in spans)
                    fix = f"`{f.name[: m.start()]}{spans[0][1]}{f.name[m.end() :]}`"
                    hint = f"rename it (e.g. {fix}) or change its window"
                else:
                    has = "has no window (it aggregates every event)"
                    lo, hi = stated[0][1], stated[0][2]
                    hint = f"add `over {_duration(lo)}` or rename it" if lo == hi else "rename it"
                yield Diagnostic(
                    self.code,
                    f"feature `{f.name}` says {said} in its name but {has}",
                    name_span(f, m.start(), m.end() - m.start()),
                    Severity.WARNING,
                    (hint,),
                )
