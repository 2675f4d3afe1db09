"""Connection URLs as they may be shown: in an error message, a log line, a report.

Warehouse and online-store URLs both carry passwords; both layers redact them the same way,
so the helper lives below both.
"""

from __future__ import annotations

import urllib.parse


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by `***`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
