"""`oom-responder doctor --config FILE`: is the cluster reachable, and is every verb the playbooks need allowed?

Stage: command. Asks the API server for its version, then one SelfSubjectAccessReview per permission of
`responder.kube.permissions.needed` (per configured namespace, or cluster-wide), and prints a table.
Exit 0 when everything is allowed, 1 when something is missing or the cluster cannot be reached, 2 for a bad
config. It never writes anything but the access reviews (which persist nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TextIO

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--config", required=False, help="config file (default: $OOM_RESPONDER_CONFIG)")


def run(args: argparse.Namespace) -> int:
    from responder import config as config_mod  # noqa: PLC0415

    if not (args.config or os.environ.get(config_mod.CONFIG_ENV)):
        print("doctor: --config FILE (or OOM_RESPONDER_CONFIG) is required", file=sys.stderr)
        return 2
    loaded = config_mod.load_for_command(args.config)
    if loaded is None:
        return 2
    return asyncio.run(diagnose(loaded, out=sys.stdout))


def _heap_dumps(config: object) -> str:
    """One line on heap dumps (opt-in): whether they are on, and whether a playbook takes them."""
    from responder.models import actions, settings  # noqa: PLC0415

    assert isinstance(config, settings.Settings)
    used = [p.name for p in config.playbooks if any(s.action is actions.Action.HEAP_DUMP for s in p.actions)]
    if not config.diagnostics.heap_dump.enabled:
        return "heap dumps: off (diagnostics.heap_dump.enabled: false; pods/exec not needed)"
    if not used:
        return "heap dumps: enabled, but no playbook has a heap_dump action"
    return f"heap dumps: enabled in {', '.join(used)} (pods/exec get and create, checked above)"


async def diagnose(config: object, *, out: TextIO) -> int:
    """Print the report; 0 when all is allowed."""
    from responder import metrics as metrics_mod  # noqa: PLC0415
    from responder.kube import client, errors, permissions  # noqa: PLC0415
    from responder.kube import state as state_mod  # noqa: PLC0415
    from responder.models import settings  # noqa: PLC0415

    assert isinstance(config, settings.Settings)
    try:
        kube = await client.Kube.connect(settings=config.kubernetes, metrics=metrics_mod.Metrics())
    except client.NoCredentials as e:
        print(f"cluster: cannot load credentials: {e}", file=out)
        return 1
    try:
        try:
            version = await kube.version()
        except errors.KubeError as e:
            print(f"cluster: unreachable: {e.message}", file=out)
            return 1
        print(f"cluster: reachable, Kubernetes {version.get('gitVersion', '?')}", file=out)
        own = state_mod.state_namespace(config, own_namespace=state_mod.own_namespace(config))
        scopes = list(config.kubernetes.namespaces) or [""]
        rows: list[tuple[str, str, str, str, str]] = []
        missing = 0
        for permission in permissions.needed(config):
            for namespace in [own] if permission.own_namespace else scopes:
                attributes = {
                    "group": permission.group,
                    "resource": permission.resource,
                    "verb": permission.verb,
                    "namespace": namespace,
                }
                if permission.subresource:
                    attributes["subresource"] = permission.subresource
                if permission.own_namespace and permission.verb not in ("create", "list", "watch"):
                    # The chart grants the state object by name (resourceNames): ask about that object,
                    # as the service's own requests do, or a narrowly granted verb reads as missing.
                    attributes["name"] = config.guardrails.state_name
                try:
                    review = await kube.create(
                        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                        {
                            "apiVersion": "authorization.k8s.io/v1",
                            "kind": "SelfSubjectAccessReview",
                            "spec": {"resourceAttributes": attributes},
                        },
                    )
                except errors.KubeForbidden as e:
                    print(
                        f"cannot ask the API server what is allowed (selfsubjectaccessreviews): {e.message}",
                        file=out,
                    )
                    return 1
                allowed = bool((review.get("status") or {}).get("allowed"))
                missing += not allowed
                resource = permission.resource + (
                    f"/{permission.subresource}" if permission.subresource else ""
                )
                group = permission.group or "core"
                rows.append(
                    (
                        "ok" if allowed else "MISSING",
                        permission.verb,
                        f"{group}/{resource}",
                        namespace or "*",
                        permission.why,
                    )
                )
        widths = [
            max(len(row[i]) for row in [*rows, ("ALLOWED", "VERB", "RESOURCE", "NAMESPACE", "WHY")])
            for i in range(5)
        ]
        for row in [("ALLOWED", "VERB", "RESOURCE", "NAMESPACE", "WHY"), *rows]:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
        print(f"{missing} missing" if missing else "every permission the playbooks need is allowed", file=out)
        print(_heap_dumps(config), file=out)
        return 1 if missing else 0
    finally:
        await kube.close()
