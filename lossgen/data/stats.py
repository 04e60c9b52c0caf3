"""Dataset statistics, in the shape of the paper's Table 3."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Statistics:
    """Counts over the whole dataset (all three splits), plus the size of each split.

    `test` is None only for a foreign split directory, whose test file is not read before
    `Dataset.open_test()` (its positive/negative counts then cover train and validation).
    """

    users: int
    items: int
    positive: int
    negative: int
    train: int
    validation: int
    test: int | None

    @property
    def interactions(self) -> int:
        return self.positive + self.negative

    @property
    def density(self) -> float:
        """Interactions / (users x items), as Table 3 defines it."""
        return self.interactions / (self.users * self.items) if self.users and self.items else 0.0

    def table3_row(self, name: str) -> dict[str, str]:
        """The Table 3 row as display strings: users, items, positive, negative, density."""
        return {
            "dataset": name,
            "users": f"{self.users:,}",
            "items": f"{self.items:,}",
            "positive": f"{self.positive:,}",
            "negative": f"{self.negative:,}",
            "density": f"{100 * self.density:.2f}%",
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Statistics":
        return cls(**{f.name: data[f.name] for f in fields(cls)})
