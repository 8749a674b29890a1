"""The decisions a strategy can take, and the outcome it hands to the reconciler."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Decision(StrEnum):
    HOLD = "hold"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    DONE = "done"


class Phase(StrEnum):
    IDLE = "idle"  # no candidate being released
    PROGRESSING = "progressing"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"  # candidate promoted (or mirror observation passed)
    FAILED = "failed"  # rolled back
    INCONCLUSIVE = "inconclusive"  # schedule over without a conclusion; waiting for a person


@dataclass(frozen=True)
class TrafficSplit:
    """Weights per version name (summing to 100) and an optional mirror."""

    weights: tuple[tuple[str, int], ...]
    mirror_to: str | None = None
    mirror_percent: float = 0.0

    @classmethod
    def of(
        cls, weights: dict[str, int], mirror_to: str | None = None, mirror_percent: float = 0.0
    ) -> TrafficSplit:
        return cls(tuple(weights.items()), mirror_to, mirror_percent if mirror_to else 0.0)

    def as_dict(self) -> dict[str, int]:
        return dict(self.weights)

    def weight(self, version: str) -> int:
        return self.as_dict().get(version, 0)

    def same_as(self, other: TrafficSplit) -> bool:
        """Equal weights and mirror, whatever the order the versions are listed in."""
        return (
            self.as_dict() == other.as_dict()
            and self.mirror_to == other.mirror_to
            and self.mirror_percent == other.mirror_percent
        )

    def trailer(self) -> str:
        """The `Weights:` trailer value: v1=90,v2=10 (plus mirror=v2:10 when mirroring)."""
        text = ",".join(f"{name}={w}" for name, w in self.weights)
        if self.mirror_to:
            text += f",mirror={self.mirror_to}:{self.mirror_percent:g}"
        return text


@dataclass(frozen=True)
class Outcome:
    """What a strategy decided for one policy at one instant."""

    decision: Decision
    reason: str
    split: TrafficSplit  # the split to write (unchanged for hold/done)
    phase: Phase
    step: int  # index of the step the release is at after this decision
