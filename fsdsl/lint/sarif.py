"""`fsc lint --format sarif`: diagnostics as a SARIF 2.1.0 log, what code-scanning services
(GitHub's among them) read to annotate a pull request.

One run, one result per diagnostic; a note becomes a related location the message links to
(`[text](id)`), as SARIF viewers render it. Columns are 1-based code points, as our spans count.
Paths relative to where `fsc` ran are given relative to `%SRCROOT%`, so the log stays valid
wherever the repository is checked out.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from fsdsl.diagnostics import Diagnostic, Span

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SRCROOT = "%SRCROOT%"


def _artifact(file: str) -> dict:
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix()), "uriBaseId": SRCROOT}


def _location(span: Span) -> dict:
    region = {"startLine": span.line, "startColumn": span.col}
    if (span.end_line, span.end_col) > (span.line, span.col):
        region.update(endLine=span.end_line, endColumn=span.end_col)
    return {"physicalLocation": {"artifactLocation": _artifact(span.file), "region": region}}


def _rules(diags: list[Diagnostic]) -> list[dict]:
    """A descriptor per code that occurs; lint rules carry their summary and name."""
    from fsdsl.lint import rules

    known = {r.code: r for r in rules()}
    out = []
    for code in sorted({d.code for d in diags}):
        rule: dict = {"id": code}
        if code in known:
            rule["name"] = known[code].name
            rule["shortDescription"] = {"text": known[code].summary()}
            rule["defaultConfiguration"] = {"level": "warning"}
        else:
            rule["defaultConfiguration"] = {"level": "error"}
        out.append(rule)
    return out


def _escape(text: str) -> str:
    """SARIF message text treats `[` and `]` as link syntax: written ones are escaped."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _result(d: Diagnostic, index: dict[str, int]) -> dict:
    text = _escape(d.message)
    related = []
    for i, note in enumerate(d.notes, start=1):
        text += f" ([{_escape(note.message)}]({i}))"
        related.append({"id": i, **_location(note.span), "message": {"text": note.message}})
    for hint in d.hints:
        text += f"\nhelp: {_escape(hint)}"
    result: dict = {
        "ruleId": d.code,
        "ruleIndex": index[d.code],
        "level": "error" if d.is_error else "warning",
        "message": {"text": text},
        "locations": [_location(d.span)],
    }
    if related:
        result["relatedLocations"] = related
    return result


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fsdsl")
    except PackageNotFoundError:
        return None


def render_sarif(diags: list[Diagnostic]) -> str:
    rules = _rules(diags)
    index = {r["id"]: i for i, r in enumerate(rules)}
    driver: dict = {"name": "fsc", "fullName": "fsdsl's fsc lint"}
    if (v := _version()) is not None:
        driver["version"] = v
    driver["rules"] = rules
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": [_result(d, index) for d in diags],
            }
        ],
    }
    return json.dumps(log, indent=2)
