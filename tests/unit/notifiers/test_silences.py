"""The Alertmanager API v2 silence body.

Covers: matchers with isRegex/isEqual, UTC times with a Z, createdBy and comment. Creating, reading and
expiring silences run against the real Alertmanager in tests/alertmanager/test_silences.py.
"""

from __future__ import annotations

import datetime

from responder.models import diagnostics
from responder.notifiers import silences


def test_writes_a_postable_silence() -> None:
    starts = datetime.datetime(2026, 12, 1, 13, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    body = silences.to_json(
        diagnostics.Silence(
            matchers=(
                diagnostics.SilenceMatcher("alertname", "OOMKilled"),
                diagnostics.SilenceMatcher("pod", "web-.+", is_regex=True),
                diagnostics.SilenceMatcher("team", "payments", is_equal=False),
            ),
            starts_at=starts,
            ends_at=starts + datetime.timedelta(minutes=30),
            created_by="oom-responder",
            comment="raise_memory on Deployment shop/web",
        )
    )
    assert body == {
        "matchers": [
            {"name": "alertname", "value": "OOMKilled", "isRegex": False, "isEqual": True},
            {"name": "pod", "value": "web-.+", "isRegex": True, "isEqual": True},
            {"name": "team", "value": "payments", "isRegex": False, "isEqual": False},
        ],
        "startsAt": "2026-12-01T12:00:00.000000Z",
        "endsAt": "2026-12-01T12:30:00.000000Z",
        "createdBy": "oom-responder",
        "comment": "raise_memory on Deployment shop/web",
    }
