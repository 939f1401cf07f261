"""Guard stage: may this planned mitigation be written? Purely computational, no side effects.

Everything arrives as an argument: the plan, a snapshot of the target workload (annotations and ledger), the
cluster-wide state (budget, blast-radius window, breaker, pause switch), the settings and the clock. Nothing
here reads the clock, the environment or the cluster, and nothing here writes: `responder.kube.state` applies the
state changes computed here by compare-and-swap, and the engine acts on the returned `Decision`.

The runbook's rule "never make an incident worse" is spelled out as checks taken in a fixed order; the first
that fails names its guardrail: paused, namespace, opt-in/opt-out, an unreadable ledger (counted as the cap
reached), ceiling, single step, cooldown, per-target cap, blast-radius breaker, global budget (the last two, and the pause switch, are `responder.logic.budgeting`'s
arithmetic over the cluster-wide state). Escalations and diagnostics are not writes: only the namespace and
opt-out policy applies to them.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence

from responder.logic import budgeting
from responder.models import actions, cluster_state, decisions, ledgers, quantities, settings

__all__ = [
    "COUNTED_RESULTS",
    "MUTATING_ACTIONS",
    "Ceiling",
    "actions_in_window",
    "ceiling_for",
    "check_scope",
    "clamp_amount",
    "cooldown_remaining_seconds",
    "guard",
    "is_mutating",
    "is_namespace_allowed",
    "max_step_amount",
]

MUTATING_ACTIONS = actions.mutating()
"""Actions that write to the cluster (their traits say so); only these spend budget and are rate-limited."""

COUNTED_RESULTS = frozenset({decisions.Outcome.DONE, decisions.Outcome.FAILED, decisions.Outcome.ESCALATED})
"""Ledger results that count towards cooldowns and caps. A failed rollout still counts: the write happened,
and retrying a failing change in a loop is exactly what must not happen."""


_TRUE = frozenset({"true", "yes", "on", "1", "enabled"})


def is_mutating(action: settings.Action) -> bool:
    return action in MUTATING_ACTIONS


# --- policy -------------------------------------------------------------------------------------------------


def is_namespace_allowed(namespace: str, *, own_namespace: str, settings: settings.Settings) -> bool:
    guardrails = settings.guardrails
    if namespace == own_namespace and not guardrails.act_in_own_namespace:
        # The service must not take itself (or what runs beside it) down while answering an incident.
        return False
    if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in guardrails.namespaces_exclude):
        return False
    return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in guardrails.namespaces_include)


def _namespace_detail(namespace: str, *, own_namespace: str, settings: settings.Settings) -> str:
    guardrails = settings.guardrails
    if namespace == own_namespace and not guardrails.act_in_own_namespace:
        return f"namespace {namespace!r} is the service's own (guardrails.act_in_own_namespace is false)"
    for pattern in guardrails.namespaces_exclude:
        if fnmatch.fnmatchcase(namespace, pattern):
            return f"namespace {namespace!r} is excluded by {pattern!r}"
    return f"namespace {namespace!r} matches none of guardrails.namespaces_include"


def check_scope(
    *, snapshot: cluster_state.TargetSnapshot, settings: settings.Settings
) -> decisions.Decision | None:
    """The namespace and opt-in/opt-out policy alone: a block, or None when the workload is in scope.

    The engine also uses it to decide whether an alerting workload counts towards the blast radius.
    """
    if not is_namespace_allowed(snapshot.namespace, own_namespace=snapshot.own_namespace, settings=settings):
        detail = _namespace_detail(
            snapshot.namespace, own_namespace=snapshot.own_namespace, settings=settings
        )
        return decisions.Decision.block(decisions.Guardrail.NAMESPACE, detail)
    raw = snapshot.annotations.get(cluster_state.ENABLED_ANNOTATION)
    if settings.guardrails.opt_in:
        if raw is None or raw.strip().lower() not in _TRUE:
            return decisions.Decision.block(
                decisions.Guardrail.OPT_OUT,
                f"guardrails.opt_in is set and the workload is not annotated "
                f'{cluster_state.ENABLED_ANNOTATION}: "true"',
            )
    elif raw is not None and raw.strip().lower() not in _TRUE:
        # Anything but an explicit "true" (a typo included) reads as "leave me alone": the safe side.
        return decisions.Decision.block(
            decisions.Guardrail.OPT_OUT,
            f"the workload is annotated {cluster_state.ENABLED_ANNOTATION}: {raw!r}",
        )
    return None


# --- ceilings and steps ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Ceiling:
    """The lowest applicable ceiling for an action on a workload, and where it comes from."""

    amount: int
    """Bytes for raise_memory, replicas for scale_out."""
    source: str
    """Which setting or annotation set it, for Events and notifications."""


def _playbook_ceiling(
    *, action: settings.Action, option: str, playbook: str | None, settings: settings.Settings
) -> int | None:
    for book in settings.playbooks:
        if book.name != playbook:
            continue
        for spec in book.actions:
            if spec.action is action:
                value = getattr(spec.options, option)
                return None if value is None else int(value)
    return None


def _parse_amount(amount: actions.Amount, raw: str) -> int:
    if amount is actions.Amount.BYTES:
        return quantities.parse_bytes(raw.strip())
    value = int(raw.strip())
    if value < 0:
        raise ValueError("negative")
    return value


def ceiling_for(
    *,
    action: settings.Action,
    annotations: Mapping[str, str],
    settings: settings.Settings,
    playbook: str | None = None,
) -> Ceiling | None:
    """The ceiling on the value written by `action` (None for actions that write no amount).

    The lowest of the global guardrail, the playbook's own maximum and the workload's annotation wins (which
    ones an action has is in its traits). An annotation that cannot be parsed gives a ceiling of 0: whoever
    wrote it meant to limit the service.
    """
    traits = actions.traits_of(action).ceiling
    if traits is None:
        return None
    candidates = [
        Ceiling(int(getattr(settings.guardrails, traits.guardrail)), f"guardrails.{traits.guardrail}")
    ]
    own = _playbook_ceiling(action=action, option=traits.option, playbook=playbook, settings=settings)
    if own is not None:
        candidates.append(Ceiling(own, f"playbook {playbook}"))
    raw = annotations.get(traits.annotation)
    if raw is not None:
        try:
            candidates.append(Ceiling(_parse_amount(traits.amount, raw), f"annotation {traits.annotation}"))
        except ValueError:
            candidates.append(Ceiling(0, f"unparsable annotation {traits.annotation}: {raw!r}"))
    return min(candidates, key=lambda ceiling: ceiling.amount)


def max_step_amount(from_amount: int, *, settings: settings.Settings) -> int:
    """The largest memory limit one raise may write, starting from `from_amount` bytes."""
    return math.floor(from_amount * settings.guardrails.max_memory_step_ratio)


def clamp_amount(
    *,
    action: settings.Action,
    from_amount: int | None,
    to_amount: int,
    annotations: Mapping[str, str],
    settings: settings.Settings,
    playbook: str | None = None,
) -> int:
    """Cap a planned amount at the ceiling and, for memory, at the maximum single step.

    Planning calls it so that a formula overshooting the ceiling yields a capped change rather than a block;
    when the result is not above `from_amount` there is nothing left to do (Reason.AT_CEILING).
    """
    amount = to_amount
    ceiling = ceiling_for(action=action, annotations=annotations, settings=settings, playbook=playbook)
    if ceiling is not None:
        amount = min(amount, ceiling.amount)
    if _amount(action) is actions.Amount.BYTES and from_amount:
        amount = min(amount, max_step_amount(from_amount, settings=settings))
    return amount


def _amounts(plan: decisions.Plan) -> tuple[int | None, int | None]:
    """The plan's numeric amounts, falling back to its human-readable values."""

    def parse(value: str | None) -> int | None:
        if value is None:
            return None
        try:
            if _amount(plan.action) is actions.Amount.BYTES:
                return quantities.parse_bytes(value)
            return int(value.split()[0])
        except (ValueError, IndexError):
            return None

    from_amount = plan.from_amount if plan.from_amount is not None else parse(plan.from_value)
    to_amount = plan.to_amount if plan.to_amount is not None else parse(plan.to_value)
    return from_amount, to_amount


def _amount(action: settings.Action) -> actions.Amount | None:
    ceiling = actions.traits_of(action).ceiling
    return None if ceiling is None else ceiling.amount


def _format(action: settings.Action, amount: int) -> str:
    if _amount(action) is actions.Amount.BYTES:
        return quantities.format_bytes(amount)
    return f"{amount} replicas"


# --- cooldowns and caps (from the ledger on the workload) -----------------------------------------------------


def _counted(entries: Iterable[ledgers.LedgerEntry]) -> Iterable[ledgers.LedgerEntry]:
    return (entry for entry in entries if entry.result in COUNTED_RESULTS)


def cooldown_remaining_seconds(
    *,
    ledger: Sequence[ledgers.LedgerEntry],
    action: settings.Action,
    now: datetime.datetime,
    settings: settings.Settings,
) -> float:
    """Seconds until `action` may be taken again on this workload (0 when it may be taken now)."""
    cooldown = settings.guardrails.cooldown_seconds.get(action, 0.0)
    if cooldown <= 0:
        return 0.0
    times = [entry.at for entry in _counted(ledger) if entry.action == action]
    if not times:
        return 0.0
    elapsed = (now - max(times)).total_seconds()
    return max(0.0, cooldown - elapsed)


def actions_in_window(
    *, ledger: Sequence[ledgers.LedgerEntry], now: datetime.datetime, settings: settings.Settings
) -> int:
    """Mutations recorded on the workload within the cap's window."""
    horizon = now - datetime.timedelta(seconds=settings.guardrails.cap.window_seconds)
    return sum(1 for entry in _counted(ledger) if is_mutating(entry.action) and entry.at > horizon)


# --- the guard ------------------------------------------------------------------------------------------------


def _block(guardrail: decisions.Guardrail, detail: str) -> decisions.Decision:
    return decisions.Decision.block(guardrail, detail)


def guard(
    *,
    plan: decisions.Plan,
    snapshot: cluster_state.TargetSnapshot,
    cluster: cluster_state.ClusterState,
    settings: settings.Settings,
    now: datetime.datetime,
) -> decisions.Decision:
    """Allow the plan, or block it naming the first guardrail that says no (see the module docstring)."""
    mutating = is_mutating(plan.action)
    if mutating and cluster.paused:
        return budgeting.paused_block(cluster)
    scope = check_scope(snapshot=snapshot, settings=settings)
    if scope is not None:
        return scope
    if not mutating:
        return decisions.Decision.allow(f"{plan.action} writes nothing")
    if snapshot.ledger_problem is not None:
        # Reading it as empty would let whoever can write the annotation reset the cap and the cooldowns.
        return _block(
            decisions.Guardrail.CAP,
            f"{snapshot.ledger_problem}: counted as the cap reached, humans must look",
        )

    from_amount, to_amount = _amounts(plan)
    ceiling = ceiling_for(
        action=plan.action, annotations=snapshot.annotations, settings=settings, playbook=plan.playbook
    )
    if ceiling is not None:
        if to_amount is None:
            return _block(decisions.Guardrail.CEILING, f"the plan for {plan.action} names no amount to check")
        if to_amount > ceiling.amount:
            return _block(
                decisions.Guardrail.CEILING,
                f"{_format(plan.action, to_amount)} is above the ceiling of "
                f"{_format(plan.action, ceiling.amount)} ({ceiling.source})",
            )
    if _amount(plan.action) is actions.Amount.BYTES and from_amount and to_amount is not None:
        largest = max_step_amount(from_amount, settings=settings)
        if to_amount > largest:
            return _block(
                decisions.Guardrail.STEP,
                f"{_format(plan.action, from_amount)} → {_format(plan.action, to_amount)} is more than "
                f"×{settings.guardrails.max_memory_step_ratio:g} in one step",
            )

    remaining = cooldown_remaining_seconds(
        ledger=snapshot.ledger, action=plan.action, now=now, settings=settings
    )
    if remaining > 0:
        return _block(
            decisions.Guardrail.COOLDOWN,
            f"{plan.action} was taken on this workload less than "
            f"{settings.guardrails.cooldown_seconds[plan.action]:g}s ago; {math.ceil(remaining)}s to go",
        )
    cap = settings.guardrails.cap
    taken = actions_in_window(ledger=snapshot.ledger, now=now, settings=settings)
    if taken >= cap.max_actions:
        return _block(
            decisions.Guardrail.CAP,
            f"{taken} mitigations on this workload within {cap.window_seconds:g}s (cap {cap.max_actions}): "
            f"humans must look",
        )
    blocked = budgeting.check_cluster(cluster, now=now, settings=settings)
    if blocked is not None:
        return blocked
    return decisions.Decision.allow()
