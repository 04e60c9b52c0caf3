"""The `Dataset` handed to models and trainers: train and validation tensors; test on request only.

The test split is not an attribute. It is read from disk by `open_test()`, and every read is
counted (`test_reads`), so the effectiveness test can prove it read the test split once and that
nothing before it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lossgen.data.stats import Statistics


@dataclass(frozen=True)
class Split:
    """One split as compact tensors: int64 user ids, int64 item ids, float32 labels (0 or 1)."""

    users: torch.Tensor
    items: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        n = self.users.shape[0]
        if self.users.dtype != torch.int64 or self.items.dtype != torch.int64 or self.labels.dtype != torch.float32:
            raise TypeError("Split wants int64 users and items and float32 labels")
        if self.items.shape != (n,) or self.labels.shape != (n,) or self.users.dim() != 1:
            raise ValueError("Split columns must be 1-D and of equal length")

    @classmethod
    def from_numpy(cls, users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> "Split":
        return cls(
            torch.from_numpy(np.ascontiguousarray(users, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)),
        )

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.users.to(device), self.items.to(device), self.labels.to(device))

    @property
    def positive_rate(self) -> float:
        return float(self.labels.mean()) if len(self) else 0.0


@dataclass
class Dataset:
    """A prepared dataset: `train`, `validation`, `n_users`, `n_items`, `statistics`, and `open_test()`.

    `user_ids[k]` / `item_ids[k]` are the raw ids of contiguous id k. `key` identifies the
    prepared content (source checksum + settings); `location` is the split directory it is read
    from (None when it lives only in memory; a cache entry for rating logs). `source` says where
    the data came from, for people; `origin` is the absolute path that the dataset name or path
    resolved to (the ratings file or the split directory read; None for generated data), which
    `load(..., origin=...)` reads again without searching.
    """

    name: str
    train: Split
    validation: Split
    n_users: int
    n_items: int
    statistics: Statistics
    user_ids: np.ndarray
    item_ids: np.ndarray
    source: str
    key: str
    location: Path | None
    _read_test: Callable[[], Split] = field(repr=False)
    test_reads: int = field(default=0)
    origin: str | None = field(default=None)

    def open_test(self) -> Split:
        """Read the test split now (from disk where the dataset has a directory). Counted in `test_reads`.

        Only the final evaluation should call this; nothing else in lossgen does.
        """
        split = self._read_test()
        self.test_reads += 1
        return split

    def __repr__(self) -> str:
        s = self.statistics
        return (f"Dataset({self.name!r}: {self.n_users} users, {self.n_items} items, train {len(self.train)}, "
                f"validation {len(self.validation)}, test {'?' if s.test is None else s.test} (not loaded))")
