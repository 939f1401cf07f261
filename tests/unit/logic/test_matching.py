"""Alertmanager label matchers.

Covers: the four operators; a missing label has the empty value; regexes are fully anchored; all-of semantics.
"""

from __future__ import annotations

import pytest

from responder.logic import matching
from responder.models import settings

LABELS = {"namespace": "shop", "pod": "api-7d9c-x1", "team": "payments"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('namespace="shop"', True, id="equal"),
        pytest.param('namespace="sho"', False, id="equal-is-not-prefix"),
        pytest.param('namespace!="shop"', False, id="not-equal"),
        pytest.param('pod=~"api-.*"', True, id="regex"),
        pytest.param('pod=~"api"', False, id="regex-is-anchored-at-the-end"),
        pytest.param('pod=~"7d9c.*"', False, id="regex-is-anchored-at-the-start"),
        pytest.param('pod!~"api-.*"', False, id="negative-regex"),
        pytest.param('team=~"pay|ship"', False, id="alternation-is-anchored-as-a-group"),
        pytest.param('team=~"payments|ship"', True, id="alternation"),
        pytest.param('owner=""', True, id="missing-label-equals-empty"),
        pytest.param('owner!=""', False, id="missing-label-is-not-non-empty"),
        pytest.param('owner=~".*"', True, id="missing-label-matches-dot-star"),
    ],
)
def test_matches_like_alertmanager(text: str, expected: bool) -> None:
    matcher = settings.Matcher.model_validate(text)
    assert matching.matches(matcher, LABELS) is expected


def test_all_matchers_must_hold() -> None:
    both = [
        settings.Matcher.model_validate('namespace="shop"'),
        settings.Matcher.model_validate('team="ops"'),
    ]
    assert not matching.matches_all(both, LABELS)
    assert matching.matches_all(both[:1], LABELS)


def test_no_matchers_always_hold() -> None:
    assert matching.matches_all([], LABELS)
