"""The pure parts of the actions, one module per action named after it: the registry. Pure.

Stage: plan. `part(action)` is the module `responder.logic.actions.<action>`'s `PART`; a module per
`models.actions.Action` member is required (a unit test checks every one loads). Found by name so that a new
action adds its module and nothing here.
"""

from __future__ import annotations

import functools
import importlib

from responder.logic.actions import base
from responder.models import actions

__all__ = ["part"]


@functools.cache
def part(action: actions.Action) -> base.PurePart:
    """The pure part of `action` (its module is imported on first use)."""
    found = getattr(importlib.import_module(f"{__name__}.{action.value}"), "PART", None)
    if not isinstance(found, base.PurePart):
        raise TypeError(f"{__name__}.{action.value}.PART is not a PurePart")
    return found
