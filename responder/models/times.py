"""Timestamps as the Kubernetes API writes them (RFC 3339, `Z` for UTC), read as aware datetimes. Data only."""

from __future__ import annotations

import datetime
from typing import Any

__all__ = ["parse"]


def parse(raw: Any) -> datetime.datetime | None:
    """The moment `raw` names, in UTC when it names no zone; None when it is not a timestamp (untrusted input)."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
