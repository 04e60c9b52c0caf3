"""A deterministic synthetic rating log with a planted latent-factor preference.

The embedded default dataset: MovieLens may not be redistributed, and demos and tests need data
that exists everywhere, is small enough for the full pipeline on two cores, and has a signal a
recommender can learn (so that a better loss measurably helps).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from lossgen.data.ratings import Ratings

# MovieLens 100K's share of each star (1..5): the synthetic ratings follow it, so about 55%
# of the labels (rating > 3) are positive, as in ML-100K.
RATING_SHARES = (0.061, 0.114, 0.271, 0.342, 0.212)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size, density and the strength of the planted signal; `seed` fixes everything."""

    users: int = 300
    items: int = 400
    density: float = 0.08  # interactions / (users x items)
    factors: int = 8  # rank of the planted preference
    noise: float = 0.8  # rating noise, relative to the preference's standard deviation
    exposure: float = 1.0  # how strongly preference decides which items a user rates
    min_per_user: int = 3  # some users below the paper's 5-interaction cut, to exercise it
    seed: int = 0

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < 2:
            raise ValueError("synthetic: users must be >= 1 and items >= 2")
        if not 0 < self.density <= 1:
            raise ValueError("synthetic: density must be in (0, 1]")
        if self.factors < 1 or self.noise < 0 or self.min_per_user < 1:
            raise ValueError("synthetic: factors >= 1, noise >= 0 and min_per_user >= 1 are required")

    def to_dict(self) -> dict:
        return asdict(self)


def preference(config: SyntheticConfig) -> np.ndarray:
    """The planted preference matrix [users, items] (standardised): what a model should recover."""
    rng = np.random.default_rng([config.seed, 1])
    p = rng.normal(size=(config.users, config.factors))
    q = rng.normal(size=(config.items, config.factors))
    item_bias = rng.normal(scale=0.5, size=config.items)
    user_bias = rng.normal(scale=0.5, size=(config.users, 1))
    score = p @ q.T / np.sqrt(config.factors) + item_bias + user_bias
    return (score - score.mean()) / score.std()


def generate(config: SyntheticConfig = SyntheticConfig()) -> Ratings:
    """Rating log in file order: users 1..U, items 1..I, ratings 1..5, integer timestamps.

    Activity per user is heavy-tailed (log-normal), item exposure follows a Zipf-like popularity
    tilted by preference; stars come from preference plus noise, cut at the quantiles that give
    `RATING_SHARES`. Timestamps are per-user sessions in whole minutes, so ties happen (and are
    broken by file order, as in the real data). Rows are shuffled, like a real log.
    """
    c = config
    score = preference(c)
    rng = np.random.default_rng([c.seed, 2])
    target = max(int(round(c.density * c.users * c.items)), c.users * min(c.min_per_user, c.items))
    activity = rng.lognormal(sigma=0.8, size=c.users)
    per_user = np.clip(np.round(activity / activity.sum() * target), min(c.min_per_user, c.items), c.items).astype(np.int64)
    popularity = -np.log(np.arange(1, c.items + 1)) * 0.8
    popularity = popularity[rng.permutation(c.items)]

    users, items = [], []
    for u in range(c.users):
        # Gumbel top-k: k distinct items with probability proportional to exp(logit), no loop over items.
        logits = popularity + c.exposure * score[u] + rng.gumbel(size=c.items)
        chosen = np.argpartition(-logits, per_user[u] - 1)[: per_user[u]]
        users.append(np.full(per_user[u], u, dtype=np.int64))
        items.append(np.sort(chosen))
    users = np.concatenate(users)
    items = np.concatenate(items)

    latent = score[users, items] + c.noise * rng.normal(size=len(users))
    cuts = np.quantile(latent, np.cumsum(RATING_SHARES)[:-1])
    ratings = (np.searchsorted(cuts, latent) + 1).astype(np.float64)

    start = rng.integers(874_000_000, 890_000_000, size=c.users)  # 1997-98, like ML-100K
    minutes = rng.geometric(0.3, size=len(users)) - 1  # 0 minutes apart in a session is common
    session_gap = rng.random(len(users)) < 0.1
    minutes = minutes + session_gap * rng.integers(60 * 24, 60 * 24 * 60, size=len(users))
    times = np.empty(len(users), dtype=np.int64)
    first = np.r_[0, np.cumsum(per_user)[:-1]]
    offsets = np.cumsum(minutes)
    offsets -= np.repeat(offsets[first], per_user)
    # Rated in an order that favours preferred items early is not assumed: order within a user is random.
    within = np.concatenate([rng.permutation(k) for k in per_user]) + np.repeat(first, per_user)
    times[within] = np.repeat(start, per_user) + 60 * offsets

    shuffle = rng.permutation(len(users))
    users, items, ratings, times = users[shuffle] + 1, items[shuffle] + 1, ratings[shuffle], times[shuffle]
    digest = hashlib.sha256()
    for array in (users, items, ratings, times):
        digest.update(np.ascontiguousarray(array).tobytes())
    name = "synthetic(" + ",".join(f"{k}={v}" for k, v in c.to_dict().items()) + ")"
    return Ratings(users, items, ratings, times, name, digest.hexdigest())
