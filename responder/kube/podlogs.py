"""Reading a crashed container's previous log (runbook RB-010 Step 4), bounded in lines and bytes.

Stage: kube edge (reads only). `pods/log` with `previous=true` is served by the kubelet through the API
server. The read is bounded by `tailLines` and `limitBytes`; since the kubelet keeps the *start* of the tail
when `limitBytes` cuts it, a log too large is read a second time with fewer lines, so its end (the crash)
is what gets scanned. Every failure becomes the excerpt's `problem` line: it never raises for a cluster
error and never fails a mitigation. The grep itself is `responder.logic.excerpting`'s.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

from responder.kube import client, errors
from responder.logic import excerpting
from responder.models import diagnostics, settings

__all__ = ["read_previous"]

logger = logging.getLogger(__name__)


def _problem(error: errors.KubeError) -> str:
    text = error.message
    if isinstance(error, errors.KubeForbidden):
        return f"reading logs is not allowed (RBAC: get pods/log): {text}"
    if isinstance(error, errors.KubeNotFound):
        return f"the pod is gone: {text}"
    # The kubelet's answer for a container without a previous run (the pod's status usually says so first).
    if isinstance(error, errors.KubeInvalid) and "previous terminated container" in text:
        return f"the container has not run before: there is no previous log ({text})"
    if isinstance(error, errors.KubeUnavailable):
        return f"the kubelet or API server did not answer: {text}"
    return f"unreadable: {text}"


async def _read(kube: client.Kube, path: str, *, container: str, tail_lines: int, limit_bytes: int) -> bytes:
    query = [
        ("container", container),
        ("previous", "true"),
        ("tailLines", str(tail_lines)),
        ("limitBytes", str(limit_bytes)),
    ]
    return await kube.read_text(path, query=query, limit_bytes=limit_bytes)


async def read_previous(
    kube: client.Kube,
    *,
    namespace: str,
    pod: str,
    container: str,
    options: settings.PreviousLogsSettings,
    pod_body: Mapping[str, Any] | None = None,
) -> diagnostics.LogExcerpt:
    """The previous log's lines matching `options.patterns`; a problem line instead when it cannot be read.

    `pod_body`, the pod as just read, saves a request when its status shows the container never ran before.
    """
    if pod_body is not None and not excerpting.has_run_before(pod_body, container):
        return diagnostics.LogExcerpt(
            container=container,
            problem="the container has not run before (no restart, no terminated state): there is no previous log",
        )
    path = (
        f"/api/v1/namespaces/{urllib.parse.quote(namespace, safe='')}"
        f"/pods/{urllib.parse.quote(pod, safe='')}/log"
    )
    narrowed: int | None = None
    try:
        raw = await _read(
            kube, path, container=container, tail_lines=options.tail_lines, limit_bytes=options.limit_bytes
        )
        if len(raw) >= options.limit_bytes and options.tail_lines > 1:
            narrowed = excerpting.narrow_tail_lines(
                raw.decode("utf-8", "replace"), limit_bytes=options.limit_bytes, tail_lines=options.tail_lines
            )
            raw = await _read(
                kube, path, container=container, tail_lines=narrowed, limit_bytes=options.limit_bytes
            )
    except errors.KubeError as e:
        logger.info("previous log of %s/%s/%s unavailable: %s", namespace, pod, container, e.message)
        return diagnostics.LogExcerpt(container=container, problem=_problem(e))
    text = raw.decode("utf-8", "replace")
    if narrowed is not None and len(raw) >= options.limit_bytes:
        # Still cut by limitBytes: the last line is partial; drop it rather than grep half a line.
        text = text.rsplit("\n", 1)[0]
    return excerpting.excerpt(
        text, container=container, options=options, bytes_read=len(raw), narrowed_to_lines=narrowed
    )
