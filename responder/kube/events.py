"""Kubernetes Events (events.k8s.io/v1) on the workload for every action and every refusal.

Stage: notify (the cluster-side record). `kubectl describe deployment web` then shows what oom-responder
did or why it did not. Writing an Event is best effort: a failure is logged and never fails a mitigation.
It decides nothing about incidents.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import urllib.parse

from responder.kube import client, errors, fetching
from responder.models import targets

__all__ = ["MAX_NOTE_BYTES", "REPORTING_CONTROLLER", "record"]

logger = logging.getLogger(__name__)

REPORTING_CONTROLLER = "oom-responder"
MAX_NOTE_BYTES = 1024
"""The API server refuses Event notes above 1 KiB."""


def _truncate(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


async def record(
    kube: client.Kube,
    *,
    target: targets.Target,
    uid: str | None,
    action: str,
    reason: str,
    note: str,
    warning: bool,
    identity: str,
    now: datetime.datetime,
) -> bool:
    """Write one Event regarding the workload; True when it was written."""
    regarding: dict[str, str] = {
        "apiVersion": fetching.API_VERSIONS[target.kind],
        "kind": target.kind.value,
        "name": target.name,
        "namespace": target.namespace,
    }
    if uid:
        regarding["uid"] = uid
    body = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        # Named like kubectl's and client-go's Events (<object>.<unique hex>); a generateName ending in "." is
        # refused by the Event name validation.
        "metadata": {"name": f"{target.name[:200]}.{secrets.token_hex(8)}", "namespace": target.namespace},
        "eventTime": now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": identity[:128],
        "action": action[:128],
        "reason": reason[:128],
        "note": _truncate(note, MAX_NOTE_BYTES),
        "type": "Warning" if warning else "Normal",
        "regarding": regarding,
    }
    path = f"/apis/events.k8s.io/v1/namespaces/{urllib.parse.quote(target.namespace, safe='')}/events"
    try:
        await kube.create(path, body)
    except errors.KubeError as e:
        logger.warning("could not write an Event on %s: %s", target.key, e.message)
        return False
    return True
