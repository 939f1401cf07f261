"""The ledger of actions kept on each workload in the `oom-responder.io/ledger` annotation. Data only.

It is written in the same PATCH as the mitigation, with the workload's resourceVersion as precondition, so
cooldowns, caps and "already handled" survive restarts and hold across replicas: etcd is the only store.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pydantic
from pydantic import Field

from responder.models import decisions, settings

__all__ = [
    "ANNOTATION",
    "MAX_ANNOTATION_BYTES",
    "MAX_ENTRIES",
    "Ledger",
    "LedgerEntry",
    "append",
    "dump",
    "load",
    "patch_body",
    "read",
    "with_result",
    "with_silence",
]

ANNOTATION = "oom-responder.io/ledger"
MAX_ENTRIES = 20
"""Bounded so the annotation never approaches the 256 KiB limit on all annotations of an object."""
MAX_ANNOTATION_BYTES = 32 * 1024
"""Largest ledger annotation parsed. Twenty entries written by this service take a few KiB; anything larger
was not written by it and is refused unread."""


class LedgerEntry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    action: settings.Action
    from_value: str | None = Field(None, alias="from")
    to_value: str | None = Field(None, alias="to")
    playbook: str
    occurrence: str
    """The alert occurrence id (fingerprint@startsAt) that caused the action."""
    at: pydantic.AwareDatetime
    """When the action was taken; a time without a zone cannot be compared with any other and is refused."""
    by: str
    """The responder replica that wrote it."""
    container: str | None = None
    result: decisions.Outcome = decisions.Outcome.DONE
    """done when written; updated by verification (failed) where the rollout fails."""
    thread: str | None = None
    """Notifier thread reference (Slack ts) of the incident, so follow-ups thread after restarts."""
    silence: str | None = None
    """The Alertmanager silence created after this action, so a failed verdict or a revert can expire it."""
    verdicts: dict[str, str] | None = None
    """Horizon ("1h", "48h") → verdict (stable, still_leaking, failed, unknown) taken after this action."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ledger:
    """What a workload's ledger annotation says, or why it cannot be trusted."""

    entries: tuple[LedgerEntry, ...] = ()
    problem: str | None = None
    """Why the annotation cannot be read (None: read, or absent). A ledger that cannot be read must count as
    "cap reached" for its workload: reading it as empty would let anyone who can write the annotation reset
    the cap and the cooldowns by writing junk."""


_ENTRIES = pydantic.TypeAdapter(list[LedgerEntry])


def read(raw: str | None) -> Ledger:
    """Parse the annotation strictly: every entry must be valid, or the whole ledger is unreadable.

    Never raises. The size is checked before parsing, and parsing is pydantic-core's, whose depth limit turns
    deep nesting into a validation error instead of a RecursionError.
    """
    if not raw:
        return Ledger()
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_ANNOTATION_BYTES:
        return Ledger(
            problem=f"annotation {ANNOTATION} is {size} bytes, over the {MAX_ANNOTATION_BYTES} a ledger can be"
        )
    try:
        entries = _ENTRIES.validate_json(raw)
    except pydantic.ValidationError as e:
        error = e.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return Ledger(
            problem=f"annotation {ANNOTATION} is not a ledger: {f'[{where}] ' if where else ''}{error['msg'][:200]}"
        )
    return Ledger(entries=tuple(entries))


def load(raw: str | None) -> list[LedgerEntry]:
    """The entries of a readable ledger, [] for an unreadable one. Where an unreadable ledger must fail closed
    (guarding), use `read` and its `problem`."""
    return list(read(raw).entries)


def dump(entries: Sequence[LedgerEntry]) -> str:
    return json.dumps(
        [entry.model_dump(mode="json", by_alias=True, exclude_none=True) for entry in entries[-MAX_ENTRIES:]],
        separators=(",", ":"),
    )


def append(entries: Sequence[LedgerEntry], entry: LedgerEntry) -> list[LedgerEntry]:
    return [*entries, entry][-MAX_ENTRIES:]


def patch_body(resource_version: str | None, entries: Sequence[LedgerEntry]) -> dict[str, Any]:
    """The ledger annotation under the resourceVersion precondition: a 409 if the workload changed since read.

    The one shape of every ledger write, whether it carries a change (planning merges it in) or records a
    result afterwards (`responder.kube.patching.update_ledger`).
    """
    return {"metadata": {"resourceVersion": resource_version, "annotations": {ANNOTATION: dump(entries)}}}


def with_silence(
    entries: Sequence[LedgerEntry], entry: LedgerEntry, silence_id: str
) -> list[LedgerEntry] | None:
    """The ledger with `entry` (matched by action, occurrence and time) carrying its silence id; None when
    the entry is gone (pushed out of the bounded ledger) or already carries it."""
    key = (entry.action, entry.occurrence, entry.at)
    updated: list[LedgerEntry] = []
    found = False
    for existing in entries:
        if (existing.action, existing.occurrence, existing.at) == key and existing.silence != silence_id:
            updated.append(existing.model_copy(update={"silence": silence_id}))
            found = True
        else:
            updated.append(existing)
    return updated if found else None


def with_result(
    entries: Sequence[LedgerEntry], entry: LedgerEntry, result: decisions.Outcome
) -> list[LedgerEntry]:
    """The ledger with `entry` (matched by action, occurrence and time) marked with a verification result."""
    updated: list[LedgerEntry] = []
    key = (entry.action, entry.occurrence, entry.at)
    for existing in entries:
        same = (existing.action, existing.occurrence, existing.at) == key
        updated.append(existing.model_copy(update={"result": result}) if same else existing)
    return updated
