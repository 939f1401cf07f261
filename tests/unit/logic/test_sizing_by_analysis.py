"""The memory raise sized by the analysis (`raise_memory.at_least_recommended`, runbook Step 3).

Aspects covered: a spike's right-sized limit (peak + 15 %) wins over a smaller VPA step, within the playbook's
ceiling; a leak keeps the usual step (a bigger limit only buys it time); the option can be turned off.
"""

from __future__ import annotations

import dataclasses

import pytest

from responder.models import analyses, settings
from tests.unit.logic.test_planning import MI, make_workload, playbook, propose, snapshot


def _analysed(pattern: analyses.Pattern, recommended: int) -> analyses.Analysis:
    return analyses.Analysis(pattern=pattern, reason="test", recommended_limit_bytes=recommended)


@pytest.mark.parametrize(
    ("pattern", "options", "expected"),
    [
        pytest.param(analyses.Pattern.SPIKE, settings.RaiseMemory(), "460Mi", id="spike-above-its-peak"),
        pytest.param(analyses.Pattern.STABLE, settings.RaiseMemory(), "460Mi", id="stable-right-size"),
        pytest.param(
            analyses.Pattern.SPIKE, settings.RaiseMemory(max=300 * MI), "300Mi", id="spike-within-the-ceiling"
        ),
        pytest.param(analyses.Pattern.LINEAR_LEAK, settings.RaiseMemory(), "356Mi", id="leak-keeps-the-step"),
        pytest.param(
            analyses.Pattern.SPIKE, settings.RaiseMemory(at_least_recommended=False), "356Mi", id="turned-off"
        ),
    ],
)
def test_the_raise_reaches_the_right_size_for_spikes_and_stable_workloads(
    pattern: analyses.Pattern, options: settings.RaiseMemory, expected: str
) -> None:
    snap = dataclasses.replace(
        snapshot(make_workload(limit="256Mi", request="64Mi")), analysis=_analysed(pattern, 460 * MI)
    )
    mutation = propose(snap, playbook(settings.ActionSpec(raise_memory=options))).mutation
    assert mutation is not None
    assert mutation.plan.to_value == expected
