"""Alertmanager label matchers, evaluated against an alert's labels.

Pure: no I/O, no clock. Semantics follow Alertmanager: a missing label has the empty value (so `team=""`
matches alerts without `team`), and regular expressions are fully anchored (`pod=~"api-.*"` must match the
whole value, not a substring).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

from responder.models import settings

__all__ = ["matches", "matches_all"]


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    # Alertmanager anchors every regex as ^(?:pattern)$; fullmatch does the same.
    return re.compile(pattern)


def matches(matcher: settings.Matcher, labels: Mapping[str, str]) -> bool:
    """Whether one matcher holds for the labels."""
    value = labels.get(matcher.name, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "!=":
        return value != matcher.value
    found = _compile(matcher.value).fullmatch(value) is not None
    return found if matcher.op == "=~" else not found


def matches_all(matchers: Iterable[settings.Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher holds (an empty list always holds)."""
    return all(matches(matcher, labels) for matcher in matchers)
