"""Typed, immutable records of a run directory: what every reader of a run gets back.

A `CandidateRecord` is one proposed candidate and everything the phases learned about it; its
`state` says what the proxy test decided (`CandidateState`). `RoundRecord` is one completed
round's summary. `RunSnapshot` is one consistent read of a whole run (config, rounds,
candidates, run-level facts), what reports and comparisons work from.

The on-disk column of `state` is called ``proxy`` (schema 2); the records hide that.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Optional

# The Phase II pass mark (paper Table 8): the default of `lossgen.phases.settings.CheckSettings`,
# and what a reader assumes for a run whose meta does not name the threshold it was checked with.
DEFAULT_THRESHOLD = 0.9
TASK_METRIC = {"classification": "auc", "regression": "rmse"}


class CandidateState(str, enum.Enum):
    """What the proxy test decided for a candidate."""

    PASSED = "passed"  # trained and scored
    OFF = "off"  # trained and scored; the proxy test was disabled
    ZERO_GRADIENT = "zero-gradient"  # not trained: (near) zero recommender gradient
    DUPLICATE = "duplicate"  # not trained: `duplicate_of` names the candidate whose reward it reused
    REJECTED = "rejected"  # not trained: it would fail the strict Phase II (the `lossgen` preset's search)

    @property
    def evaluated(self) -> bool:
        return self in (CandidateState.PASSED, CandidateState.OFF)


EVALUATED_STATES = (CandidateState.PASSED, CandidateState.OFF)


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate of a run. `program` is the list of (op, a, b) steps as stored."""

    id: str
    round: int
    program: tuple[tuple[int, int, int], ...]
    formula: str
    strategy: str
    state: CandidateState
    fingerprint: Optional[str] = None
    duplicate_of: Optional[str] = None
    reward: Optional[float] = None
    accepted: bool = False
    evaluation: Optional[int] = None  # 1-based count of full evaluations when it was trained
    validation: Optional[float] = None  # the validation metric after its epoch
    train_loss: Optional[float] = None
    note: Optional[str] = None  # e.g. "diverged"
    phase2_rate: Optional[float] = None
    phase3: Optional[dict] = None
    eps: Optional[float] = None  # the smoothing epsilon it was trained with (None: the paper's)
    # the strict Phase II's measure: the smaller per-label share of pairs pushed the right way by
    # a non-zero gradient, 0.0 when a gradient exceeds the strict bound (None: not checked strictly)
    phase2_strict: Optional[float] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", CandidateState(self.state))
        object.__setattr__(self, "program", tuple(tuple(int(v) for v in s) for s in self.program))

    @property
    def evaluated(self) -> bool:
        """Trained and scored (not a zero-gradient candidate, nor a duplicate that reused a reward)."""
        return self.state.evaluated

    def passes(self, threshold: float) -> bool:
        """Passed Phase II at `threshold` (with the strict rule too when it was checked strictly)
        and did not diverge in the search."""
        strict_ok = self.phase2_strict is None or self.phase2_strict >= threshold
        return self.phase2_rate is not None and self.phase2_rate >= threshold and strict_ok and self.note is None

    def with_updates(self, **changes: Any) -> "CandidateRecord":
        return replace(self, **changes)

    def columns(self) -> dict[str, Any]:
        """The stored columns (``proxy`` for the state), in the table's order: CSV rows."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "state":
                out["proxy"] = value.value
            elif f.name == "program":
                out["program"] = [list(s) for s in value]
            else:
                out[f.name] = value
        return {k: out[k] for k in COLUMNS}


# The stored column order of the candidates table (and of candidates.csv).
COLUMNS = ("id", "round", "program", "formula", "fingerprint", "strategy", "proxy", "duplicate_of",
           "reward", "accepted", "evaluation", "validation", "train_loss", "note", "phase2_rate", "phase3", "eps",
           "phase2_strict")
# Columns added after schema 2 (a schema-2 run directory is read with them NULL, migrated when written).
NEW_COLUMNS = {"eps": "REAL", "phase2_strict": "REAL"}


@dataclass(frozen=True)
class RoundRecord:
    """A completed round: its number, when it finished, and its stored summary (`info`: the
    search's RoundReport fields, e.g. totals, validation, elapsed, moved_to)."""

    round: int
    finished_at: float
    info: dict = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.info.get(key, default)

    @property
    def totals(self) -> dict:
        value = self.info.get("totals")
        return value if isinstance(value, dict) else {}

    @property
    def elapsed(self) -> Optional[float]:
        return _number(self.info.get("elapsed"))

    @property
    def moved_to(self) -> Optional[str]:
        return self.info.get("moved_to")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def distinct_evaluated(records: Iterable[CandidateRecord]) -> list[CandidateRecord]:
    """Evaluated candidates, the first evaluation of each fingerprint, in evaluation order.

    The one definition of "distinct" every phase, report and comparison uses. With the run-wide
    duplicate memory on, a fingerprint is evaluated once anyway; without it the first evaluation
    stands for the function (a later one would be the same loss trained from another state)."""
    seen, out = set(), []
    for r in sorted((r for r in records if r.evaluated and r.evaluation is not None), key=lambda r: r.evaluation):
        key = r.fingerprint or r.formula or r.id
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def all_passing(records: Iterable[CandidateRecord], threshold: float,
                budget: int | None = None) -> list[CandidateRecord]:
    """Every distinct candidate that passed Phase II, by search reward (ties: the earlier
    evaluation): what Phase III's race starts from. `budget` counts only the first `budget`
    evaluations."""
    rows = distinct_evaluated(records)
    if budget is not None:
        rows = [r for r in rows if r.evaluation <= budget]
    passing = [r for r in rows if r.passes(threshold) and r.reward is not None]
    passing.sort(key=lambda r: (-r.reward, r.evaluation))
    return passing


def best_passing(records: Iterable[CandidateRecord], threshold: float, top: int | None,
                 budget: int | None = None) -> list[CandidateRecord]:
    """The `top` best distinct candidates that passed Phase II, by search reward (ties: the
    earlier evaluation; `top` None: all of them, `all_passing`). `budget` counts only the
    first `budget` evaluations."""
    passing = all_passing(records, threshold, budget)
    return passing if top is None else passing[:top]


@dataclass(frozen=True)
class RunSnapshot:
    """One consistent read of a run directory (whole rounds only, even while a search writes)."""

    path: Path
    config: dict
    rounds: tuple[RoundRecord, ...]
    candidates: tuple[CandidateRecord, ...]
    meta: dict

    @property
    def metric(self) -> str:
        """Metric key of the validation/train curves: the rounds' own, else the task's."""
        for r in reversed(self.rounds):
            if isinstance(r.get("metric"), str):
                return r.get("metric")
        return TASK_METRIC.get(str(self.config.get("task", "")), "auc")

    @property
    def phase2(self) -> Optional[dict]:
        value = self.meta.get("phase2")
        return value if isinstance(value, dict) else None

    @property
    def phase3(self) -> Optional[dict]:
        value = self.meta.get("phase3")
        return value if isinstance(value, dict) else None

    @property
    def threshold(self) -> float:
        value = _number((self.phase2 or {}).get("threshold"))
        return DEFAULT_THRESHOLD if value is None else value

    def evaluated(self) -> list[CandidateRecord]:
        """Evaluated candidates with a finite reward, in evaluation order."""
        chosen = [c for c in self.candidates if c.evaluated and _number(c.reward) is not None]
        return sorted(chosen, key=lambda c: c.evaluation if c.evaluation is not None else math.inf)

    def distinct_evaluated(self) -> list[CandidateRecord]:
        return distinct_evaluated(self.candidates)
