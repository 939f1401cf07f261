"""Building blocks of the configuration schema, shared by the settings and the per-action options. Data only.

Every configuration model is frozen and forbids unknown keys, so a typo in the YAML is an error with its key
path rather than a silently ignored setting; field docstrings become the schema's descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from pydantic import Field

from responder.models import quantities

__all__ = ["Frozen", "MemoryBytes"]


class Frozen(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _memory(value: Any) -> int:
    return quantities.parse_bytes(value)


MemoryBytes = Annotated[
    int,
    pydantic.BeforeValidator(_memory),
    Field(ge=0),
    # The file holds a quantity or a byte count; the schema (the chart's values.schema.json) says so.
    pydantic.WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": quantities.QUANTITY_PATTERN},
            ],
            "description": 'A memory quantity: "512Mi", "2Gi" or bytes.',
        }
    ),
]
"""A memory quantity: "512Mi", "2Gi" or bytes, held as bytes."""
