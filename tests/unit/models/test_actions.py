"""The actions' traits table and the two registries built on it (`responder.models.actions`).

Aspects covered:

* every action has a traits row, its options model is the one its playbook key validates, and its
  default cooldown is the one the settings start from (mutating actions only);
* every action has a pure part (`responder.logic.actions.<action>`) and an I/O part
  (`responder.engine.actions.<action>`) of the kind its traits imply: a mutating action proposes and carries
  out a write, the others are carried out beside it;
* what fits which workload kind, and what follows a rollout, as the planning and the notices rely on it;
* the one reading of a scale step.
"""

from __future__ import annotations

import pytest

from responder.engine import actions as io_parts
from responder.engine.actions import base as io_base
from responder.logic import actions as pure_parts
from responder.models import actions, settings, targets

ALL = list(actions.Action)


@pytest.mark.parametrize("action", ALL, ids=[a.value for a in ALL])
def test_every_action_has_a_traits_row_whose_options_its_playbook_key_validates(
    action: actions.Action,
) -> None:
    traits = actions.traits_of(action)
    spec = actions.ActionSpec.model_validate({action.value: {}})
    assert spec.action is action
    assert isinstance(spec.options, traits.options)
    assert traits.done_words and traits.would_words


@pytest.mark.parametrize("action", ALL, ids=[a.value for a in ALL])
def test_every_action_has_a_pure_part_and_an_io_part_of_the_kind_its_traits_say(
    action: actions.Action,
) -> None:
    pure = pure_parts.part(action)
    if actions.traits_of(action).mutating:
        assert pure.propose is not None
        assert isinstance(io_parts.mutating(action), io_base.Mutating)
    else:
        assert pure.propose is None
        assert isinstance(io_parts.additional(action), io_base.Additional)


def test_the_default_cooldowns_are_the_mutating_actions_traits_and_the_heap_dumps() -> None:
    cooldowns = settings.Settings().guardrails.cooldown_seconds
    # heap_dump writes nothing to the workload's spec but runs at most once per cooldown (its claim).
    assert set(cooldowns) == actions.mutating() | {actions.Action.HEAP_DUMP}
    assert cooldowns[actions.Action.RAISE_MEMORY] == 1800.0
    assert all(seconds > 0 for seconds in cooldowns.values())


def test_only_writes_that_change_pods_are_followed_and_only_template_changes_wait_for_a_paused_rollout() -> (
    None
):
    following = {a for a in ALL if actions.traits_of(a).follows_rollout}
    template = {a for a in ALL if actions.traits_of(a).changes_template}
    assert following == {
        actions.Action.RAISE_MEMORY,
        actions.Action.SCALE_OUT,
        actions.Action.ROLLOUT_RESTART,
    }
    assert template == {actions.Action.RAISE_MEMORY, actions.Action.ROLLOUT_RESTART}
    assert following <= actions.mutating()


@pytest.mark.parametrize(
    ("action", "kind", "fits"),
    [
        pytest.param(
            actions.Action.SCALE_OUT, targets.WorkloadKind.DAEMON_SET, False, id="daemonset-not-scaled"
        ),
        pytest.param(actions.Action.SCALE_OUT, targets.WorkloadKind.JOB, False, id="job-not-scaled"),
        pytest.param(
            actions.Action.SCALE_OUT, targets.WorkloadKind.STATEFUL_SET, True, id="statefulset-scaled"
        ),
        pytest.param(
            actions.Action.RAISE_MEMORY, targets.WorkloadKind.JOB, False, id="job-template-immutable"
        ),
        pytest.param(actions.Action.RAISE_MEMORY, targets.WorkloadKind.POD, False, id="bare-pod-no-template"),
        pytest.param(actions.Action.EVICT_POD, targets.WorkloadKind.POD, True, id="bare-pod-evicted"),
    ],
)
def test_what_fits_which_workload_kind(
    action: actions.Action, kind: targets.WorkloadKind, fits: bool
) -> None:
    assert (kind in actions.traits_of(action).kinds) is fits


@pytest.mark.parametrize(
    ("step", "parsed"),
    [
        pytest.param("+1", (1, False), id="plus-n"),
        pytest.param("3", (3, False), id="bare-n"),
        pytest.param(" +25% ", (25, True), id="percent"),
        pytest.param("+-1", None, id="negative"),
        pytest.param("+1.5", None, id="fraction"),
        pytest.param("++1", None, id="two-signs"),
        pytest.param("+", None, id="no-number"),
    ],
)
def test_a_scale_step_is_read_one_way(step: str, parsed: tuple[int, bool] | None) -> None:
    assert actions.parse_step(step) == parsed
