"""The ledger of actions kept on each workload in the `oom-responder.io/ledger` annotation. Data only.

It is written in the same PATCH as the mitigation, with the workload's resourceVersion as precondition, so
cooldowns, caps and "already handled" survive restarts and hold across replicas: etcd is the only store.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence

import pydantic
from pydantic import Field

from responder.models import decisions, settings

__all__ = ["ANNOTATION", "MAX_ENTRIES", "LedgerEntry", "append", "dump", "load"]

ANNOTATION = "oom-responder.io/ledger"
MAX_ENTRIES = 20
"""Bounded so the annotation never approaches the 256 KiB limit on all annotations of an object."""


class LedgerEntry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    action: settings.Action
    from_value: str | None = Field(None, alias="from")
    to_value: str | None = Field(None, alias="to")
    playbook: str
    occurrence: str
    """The alert occurrence id (fingerprint@startsAt) that caused the action."""
    at: datetime.datetime
    by: str
    """The responder replica that wrote it."""
    container: str | None = None
    result: decisions.Outcome = decisions.Outcome.DONE
    """done when written; updated by verification (failed) where the rollout fails."""
    thread: str | None = None
    """Notifier thread reference (Slack ts) of the incident, so follow-ups thread after restarts."""
    silence: str | None = None
    """The Alertmanager silence created after this action, so a failed verdict or a revert can expire it."""


def load(raw: str | None) -> list[LedgerEntry]:
    """Parse the annotation; a damaged ledger is treated as empty rather than blocking every mitigation."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(data, list):
        return []
    entries: list[LedgerEntry] = []
    for item in data:
        try:
            entries.append(LedgerEntry.model_validate(item))
        except pydantic.ValidationError:
            continue
    return entries


def dump(entries: Sequence[LedgerEntry]) -> str:
    return json.dumps(
        [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in entries[-MAX_ENTRIES:]],
        separators=(",", ":"),
    )


def append(entries: Sequence[LedgerEntry], entry: LedgerEntry) -> list[LedgerEntry]:
    return [*entries, entry][-MAX_ENTRIES:]
