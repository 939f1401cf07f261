"""The follow-up records: one Lease per followed workload in the service's namespace, changed by CAS.

Stage: kube edge. Why here and not in the workload's ledger annotation:

* a workload that is deleted takes its annotations with it, and then nobody could say once that its schedule
  ended; a record beside it survives to say so;
* finding what is due is one labelled LIST in one namespace, instead of listing every Deployment,
  StatefulSet and DaemonSet of the cluster on every poll;
* the workload is not written every poll (its resourceVersion is what mitigations race on, and GitOps
  tools watch it); only the mitigation, a scheduled restart and a verdict's ledger note touch it;
* RBAC: Leases in one namespace (coordination objects holding nothing secret), `list` to find and read them,
  never `get` or `delete`: a record that is over is kept as an idle tombstone that the workload's next
  mitigation reuses.

The name is derived from the workload's key, so replicas that start following the same workload at once meet
on one object (create → 409 AlreadyExists → read and merge). Every change is a PUT carrying the
resourceVersion it was computed from: of two racing replicas exactly one wins, the other re-reads. Deletion
is a tombstone written under the same precondition. A record that fails strict validation (edited by hand) is returned as
unreadable, with the reason, and is never rewritten here. It decides nothing.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import urllib.parse
from collections.abc import Callable
from typing import Any

import pydantic

from responder.kube import client, errors
from responder.models import follow_ups, targets

__all__ = ["DELETE", "INVALID_ANNOTATION", "FollowUpStore", "Stored", "parse", "tombstone"]

INVALID_ANNOTATION = "oom-responder.io/unreadable-reported"
"""Set on a record that failed validation once it has been reported, so it is reported once."""


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
"""Returned by a change function: the record is over; a tombstone replaces it (under the same precondition)."""


def tombstone(
    record: follow_ups.FollowUp, reason: follow_ups.EndReason = follow_ups.EndReason.DONE
) -> follow_ups.FollowUp:
    """What is kept of a record that is over: who it was for, and nothing left to do."""
    return record.model_copy(
        update={
            "ended": record.ended or reason,
            "horizons": (),
            "schedule": None,
            "verification": None,
            "claim": None,
            "restarts": {},
            "confirmed": True,
        }
    )


_KNOWN = 1024
"""Records remembered by workload (the ones being worked on); an older one forgotten costs a GET."""

Change = Callable[["follow_ups.FollowUp | None"], "follow_ups.FollowUp | _Delete | None"]


@dataclasses.dataclass(frozen=True, slots=True)
class Stored:
    """One record as read: the model (None when unreadable), where it stands, and why it is unreadable."""

    name: str
    resource_version: str
    record: follow_ups.FollowUp | None
    error: str | None = None
    """Why the record could not be read (field paths of the validation errors)."""
    target_key: str | None = None
    """The workload key annotated on the Lease (known even when the record is unreadable)."""
    reported: bool = False
    """An unreadable record was reported already."""


def _explain(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item.get("loc", ())) or "(record)"
        parts.append(f"{where}: {item.get('msg', '')}")
    return "; ".join(parts)


def parse(lease: client.Body) -> Stored:
    """A Lease as a `Stored` record; never raises for bad data."""
    metadata = lease.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    raw = annotations.get(follow_ups.DATA_KEY)
    name = str(metadata.get("name") or "")
    version = str(metadata.get("resourceVersion") or "")
    key = annotations.get(follow_ups.TARGET_ANNOTATION)
    reported = annotations.get(INVALID_ANNOTATION) == "true"
    if not isinstance(raw, str):
        return Stored(name, version, None, f"no {follow_ups.DATA_KEY} annotation on the Lease", key, reported)
    try:
        record = follow_ups.FollowUp.model_validate_json(raw)
    except pydantic.ValidationError as e:
        return Stored(name, version, None, _explain(e), key, reported)
    if record.target.key != key or follow_ups.record_name(record.target) != name:
        return Stored(name, version, None, "the record names another workload than its object", key, reported)
    return Stored(name, version, record, None, key, reported)


class FollowUpStore:
    """Reads and compare-and-swaps follow-up records. Requests go through `client.Kube` (throttled, timed
    out, retried for passing failures)."""

    def __init__(self, kube: client.Kube, *, namespace: str, max_conflicts: int = 20) -> None:
        self.kube = kube
        self.namespace = namespace
        self._max_conflicts = max_conflicts
        self._known: collections.OrderedDict[str, Stored] = collections.OrderedDict()
        """The last record this store read or wrote per workload key: an update starts from it instead of a
        GET (its write's precondition proves it current, or a 409 sends the update to the API server)."""

    def _remember(self, stored: Stored) -> Stored:
        if stored.record is not None:
            key = stored.record.target.key
            self._known[key] = stored
            self._known.move_to_end(key)
            while len(self._known) > _KNOWN:
                self._known.popitem(last=False)
        return stored

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{urllib.parse.quote(self.namespace, safe='')}/leases"

    def _path(self, name: str) -> str:
        return f"{self._collection}/{urllib.parse.quote(name, safe='')}"

    def _body(self, record: follow_ups.FollowUp, *, resource_version: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": follow_ups.record_name(record.target),
            "namespace": self.namespace,
            "labels": dict(follow_ups.LABELS),
            "annotations": {
                follow_ups.TARGET_ANNOTATION: record.target.key,
                follow_ups.DATA_KEY: record.model_dump_json(),
            },
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": {}}

    # ---- reading --------------------------------------------------------------------------------------------

    async def list(self) -> list[Stored]:
        """Every record in the namespace (one labelled LIST), tombstones included."""
        selector = ",".join(f"{k}={v}" for k, v in follow_ups.LABELS.items())
        items = await self.kube.list(self._collection, query={"labelSelector": selector})
        return [parse(item) for item in items]

    async def read(self, target: targets.Target) -> Stored | None:
        """The record of `target` (a tombstone too: `record.ended` is then set), None when there is none.

        A LIST narrowed to the one name, not a GET: the same one request, and the service's Role then needs
        no `get` on Leases beside the `list` the poller needs anyway."""
        name = follow_ups.record_name(target)
        listed = await self.kube.list(self._collection, query={"fieldSelector": f"metadata.name={name}"})
        found = [item for item in listed if (item.get("metadata") or {}).get("name") == name]
        if not found:
            self._known.pop(target.key, None)
            return None
        return self._remember(parse(found[0]))

    # ---- writing --------------------------------------------------------------------------------------------

    async def replace(self, stored: Stored, record: follow_ups.FollowUp) -> Stored:
        """One compare-and-swap: write `record` over `stored` at its resourceVersion. KubeConflict when anyone
        wrote since (the caller lost: it must re-read, not retry blindly); KubeNotFound when it was deleted."""
        try:
            answer = await self.kube.request(
                "PUT",
                self._path(stored.name),
                body=self._body(record, resource_version=stored.resource_version),
                verb="update",
            )
        except BaseException:
            self._known.pop(record.target.key, None)  # changed, gone, or unknown whether written
            raise
        return self._remember(
            Stored(
                stored.name,
                str((answer.get("metadata") or {}).get("resourceVersion") or ""),
                record,
                None,
                record.target.key,
            )
        )

    async def create(self, record: follow_ups.FollowUp) -> Stored:
        """Create the record; KubeConflict (AlreadyExists) when another replica created it first."""
        try:
            answer = await self.kube.create(self._collection, self._body(record, resource_version=None))
        except BaseException:
            self._known.pop(record.target.key, None)
            raise
        return self._remember(
            Stored(
                follow_ups.record_name(record.target),
                str((answer.get("metadata") or {}).get("resourceVersion") or ""),
                record,
                None,
                record.target.key,
            )
        )

    async def retire(self, stored: Stored, record: follow_ups.FollowUp) -> bool:
        """Overwrite the record (also an unreadable one) with `record`'s tombstone if it is still at
        `stored`'s resourceVersion; False when it changed or is gone."""
        try:
            await self.replace(stored, tombstone(record))
        except (errors.KubeConflict, errors.KubeNotFound):
            return False
        return True

    async def mark_reported(self, stored: Stored) -> bool:
        """Note on an unreadable record that it was reported (a merge patch on metadata only: its data,
        whatever it holds, is left for a person to look at). False when it changed meanwhile."""
        body = {
            "metadata": {
                "resourceVersion": stored.resource_version,
                "annotations": {INVALID_ANNOTATION: "true"},
            }
        }
        try:
            await self.kube.patch(self._path(stored.name), body, content_type=client.MERGE_PATCH)
        except (errors.KubeConflict, errors.KubeNotFound):
            return False
        return True

    async def update(self, target: targets.Target, change: Change) -> follow_ups.FollowUp | None:
        """Read, compute `change(record)`, write under the resourceVersion read; on 409 read again and redo.

        `change` gets None when there is no record, returns the new record, None (nothing to write) or
        DELETE. An unreadable record is passed as None only to be refused: it is never overwritten (KubeInvalid
        is raised so the caller reports it). Returns what is stored afterwards (None when nothing is).

        The first attempt starts from the record this store last read or wrote, or, knowing none, from no
        record (a create, refused with 409 when there is one); a decision to write nothing is only taken on
        a fresh read, since nothing else proves what was assumed.
        """
        assumed = True
        attempt = 0
        while attempt < self._max_conflicts:
            if assumed:
                stored = self._known.get(target.key)
            else:
                if attempt:
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0) * random.uniform(0.5, 1.0))
                stored = await self.read(target)
            if stored is not None and stored.record is None:
                raise errors.KubeInvalid(
                    f"follow-up record {self.namespace}/{stored.name} is unreadable: {stored.error}",
                    status=422,
                )
            current = stored.record if stored is not None else None
            changed = change(current)
            if assumed and (changed is None or (isinstance(changed, _Delete) and current is None)):
                assumed = False
                continue
            if changed is None:
                return current
            try:
                if isinstance(changed, _Delete):
                    if stored is None or current is None:
                        return None
                    await self.replace(stored, tombstone(current))
                    return None
                if stored is None:
                    try:
                        await self.create(changed)
                    except errors.KubeNotFound as e:
                        # A create is only ever refused with 404 when the namespace is missing: no retry helps.
                        raise errors.KubeNotFound(
                            f"cannot record the follow-up of {target.key}: namespace {self.namespace} not found "
                            "(follow_up.namespace)",
                            status=404,
                        ) from e
                else:
                    await self.replace(stored, changed)
            except errors.KubeConflict:
                if not assumed:
                    attempt += 1
                assumed = False
                continue
            except errors.KubeNotFound:
                if stored is None:
                    raise
                if not assumed:
                    attempt += 1
                assumed = False
                continue
            return changed
        raise errors.KubeConflict(
            f"follow-up record of {target.key} changed under every one of {self._max_conflicts} attempts",
            status=409,
        )
