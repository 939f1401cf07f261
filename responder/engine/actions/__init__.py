"""The I/O parts of the actions, one module per action named after it: the registry.

Stage: act. `part(action)` is the module `responder.engine.actions.<action>`'s `PART` (a `base.Mutating` or a
`base.Additional`, as the action's traits say it mutates or not); a unit test checks every action has one.
Found by name so that a new action adds its module and nothing here. Each sends what the pure part
(`responder.logic.actions.<action>`) planned and decides nothing.
"""

from __future__ import annotations

import functools
import importlib

from responder.engine.actions import base
from responder.models import actions

__all__ = ["additional", "mutating"]


@functools.cache
def _part(action: actions.Action) -> base.Mutating | base.Additional:
    found = getattr(importlib.import_module(f"{__name__}.{action.value}"), "PART", None)
    wanted = base.Mutating if actions.traits_of(action).mutating else base.Additional
    if not isinstance(found, wanted):
        raise TypeError(f"{__name__}.{action.value}.PART is not a {wanted.__name__}")
    return found


def mutating(action: actions.Action) -> base.Mutating:
    """The I/O part of a mutating action."""
    found = _part(action)
    assert isinstance(found, base.Mutating), f"{action} does not mutate"
    return found


def additional(action: actions.Action) -> base.Additional:
    """The I/O part of an action carried out beside the mitigation."""
    found = _part(action)
    assert isinstance(found, base.Additional), f"{action} mutates"
    return found
