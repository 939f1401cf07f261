"""Which Alertmanager silence to keep while a mitigation works, and for how long.

Stage: follow (pure). After a mitigation is written, the same alert re-paging humans during the action's
cooldown is noise; this module proposes the silence: it matches only the alert the service acted on (its
alertname, namespace and container, the workload's pods, and the playbook's own matchers, so an alert the
playbook does not handle is never silenced), lasts the action's cooldown, and points at the ledger entry.
It refuses for dry runs, refusals and escalations (humans must hear those). It sends nothing.
"""

from __future__ import annotations

import datetime
import re

from responder.models import alerts, decisions, diagnostics, settings, targets

__all__ = [
    "CREATED_BY",
    "MITIGATIONS",
    "comment",
    "duration_seconds",
    "matchers_for",
    "pod_pattern",
    "propose",
]

CREATED_BY = "oom-responder"

MITIGATIONS = frozenset(
    {
        settings.Action.RAISE_MEMORY,
        settings.Action.SCALE_OUT,
        settings.Action.EVICT_POD,
        settings.Action.ROLLOUT_RESTART,
    }
)
"""Actions that change the workload and so earn a quiet cooldown (diagnostics and escalations do not)."""

# Kubernetes' name generator (pod-template-hash and generateName suffixes) draws from this alphabet: no
# vowels and no 0/1/3, so "web-api-0" (a StatefulSet's pod) can never look like a pod of Deployment "web".
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
_GENERATE_NAME_BASE_MAX = 58
"""generateName bases longer than this are truncated by the API server; the pod name then no longer
carries the whole owner name."""


def _literal(name: str) -> str:
    # Object names are DNS subdomains ([a-z0-9.-]); only the dot is special in Go's RE2.
    return name.replace(".", r"\.")


def pod_pattern(target: targets.Target) -> str | None:
    """An anchored RE2 pattern for every pod of the workload, present and future, or None when the pod
    names do not say reliably which workload they belong to (then the alerted pod's own name is used)."""
    name = _literal(target.name)
    kind = target.kind
    if kind is targets.WorkloadKind.DEPLOYMENT:
        # Pod <deployment>-<template hash>-<5>; the ReplicaSet name (base) must fit untruncated.
        if len(target.name) + 11 > _GENERATE_NAME_BASE_MAX:
            return None
        return f"{name}-{_SAFE}{{1,10}}-{_SAFE}{{5}}"
    if kind in (targets.WorkloadKind.DAEMON_SET, targets.WorkloadKind.JOB):
        if len(target.name) + 1 > _GENERATE_NAME_BASE_MAX:
            return None
        return f"{name}-{_SAFE}{{5}}"
    if kind is targets.WorkloadKind.STATEFUL_SET:
        return f"{name}-[0-9]+"
    return None


def _from_matcher(matcher: settings.Matcher) -> diagnostics.SilenceMatcher:
    return diagnostics.SilenceMatcher(
        name=matcher.name,
        value=matcher.value,
        is_regex=matcher.op in ("=~", "!~"),
        is_equal=matcher.op in ("=", "=~"),
    )


def matchers_for(
    *,
    event: alerts.AlertEvent,
    target: targets.Target,
    playbook: settings.Playbook,
    labels: settings.AlertsSettings,
) -> tuple[diagnostics.SilenceMatcher, ...]:
    """Matchers for this alert on this workload, narrowed by the playbook's matchers."""
    found: list[diagnostics.SilenceMatcher] = [
        diagnostics.SilenceMatcher(name="alertname", value=event.alertname),
        diagnostics.SilenceMatcher(name=labels.namespace_label, value=target.namespace),
    ]
    workload_label = event.labels.get(labels.workload_name_label)
    if workload_label == target.name:
        found.append(diagnostics.SilenceMatcher(name=labels.workload_name_label, value=target.name))
    elif event.pod:
        pattern = pod_pattern(target)
        if pattern is not None and re.fullmatch(pattern, event.pod):
            found.append(diagnostics.SilenceMatcher(name=labels.pod_label, value=pattern, is_regex=True))
        else:
            # A bare pod, a truncated name, or a pod that does not follow its workload's naming: silence
            # only the pod that alerted rather than guess at its siblings.
            found.append(diagnostics.SilenceMatcher(name=labels.pod_label, value=event.pod))
    if event.container:
        found.append(diagnostics.SilenceMatcher(name=labels.container_label, value=event.container))
    seen = {(m.name, m.value, m.is_regex, m.is_equal) for m in found}
    for matcher in playbook.matchers:
        converted = _from_matcher(matcher)
        key = (converted.name, converted.value, converted.is_regex, converted.is_equal)
        if key not in seen:
            seen.add(key)
            found.append(converted)
    return tuple(found)


def duration_seconds(
    action: settings.Action,
    *,
    guardrails: settings.GuardrailSettings,
    alertmanager: settings.AlertmanagerSettings,
) -> float:
    """The action's cooldown (the time the service would not act again anyway), at least the minimum."""
    return max(guardrails.cooldown_seconds.get(action, 0.0), alertmanager.min_duration_seconds)


def comment(
    *, action: settings.Action, target: targets.Target, event: alerts.AlertEvent, at: datetime.datetime
) -> str:
    """Says what was done and where the ledger entry is, for whoever finds the silence in Alertmanager."""
    kind = target.kind.value.lower()
    return (
        f"{action.value} on {target.kind.value} {target.namespace}/{target.name} at "
        f"{at.astimezone(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} for {event.alertname}; "
        f"ledger entry of occurrence {event.occurrence_id}: kubectl -n {target.namespace} get {kind} "
        f"{target.name} -o jsonpath='{{.metadata.annotations.oom-responder\\.io/ledger}}'"
    )


def propose(
    *,
    event: alerts.AlertEvent,
    target: targets.Target,
    playbook: settings.Playbook,
    action: settings.Action,
    outcome: decisions.Outcome,
    config: settings.Settings,
    now: datetime.datetime,
) -> tuple[diagnostics.Silence | None, str]:
    """The silence to create after this action, or None and why not."""
    if config.alertmanager.url is None or not config.alertmanager.silences:
        return None, "no Alertmanager API configured"
    if action not in MITIGATIONS:
        return None, f"{action.value} does not mitigate: humans must keep hearing the alert"
    if outcome is not decisions.Outcome.DONE:
        return None, f"the action was {outcome.value}, not done"
    if event.status is not alerts.AlertStatus.FIRING:
        return None, "the alert is not firing"
    seconds = duration_seconds(action, guardrails=config.guardrails, alertmanager=config.alertmanager)
    silence = diagnostics.Silence(
        matchers=matchers_for(event=event, target=target, playbook=playbook, labels=config.alerts),
        starts_at=now,
        ends_at=now + datetime.timedelta(seconds=seconds),
        created_by=CREATED_BY,
        comment=comment(action=action, target=target, event=event, at=now),
    )
    return silence, ""
