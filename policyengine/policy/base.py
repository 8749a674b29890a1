"""What every part of the policy format shares: the frozen camelCase base model and durations."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from policyengine.policy.duration import DURATION_PATTERN

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, json_schema_extra={"examples": ["30s", "6m", "1h30m"]}),
]


class Model(BaseModel):
    """Frozen, strict about unknown fields, camelCase in YAML."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )
