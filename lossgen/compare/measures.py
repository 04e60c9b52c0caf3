"""What one run of a comparison achieved within the budget, read from its run directory.

Everything is cut at the budget: candidates are counted up to the `budget`-th evaluation, and
the sampled / proxy-skipped / duplicate counts and the search time are those at the end of the
round in which the budget was reached (a round's candidates are committed together). A run
stopped by a safety rule before spending its budget reports what it did (`reached_budget` false).
"""

from __future__ import annotations

from lossgen.runs import RoundRecord, RunStore, distinct_evaluated

COUNTS = ("sampled", "zero_gradient", "duplicates", "accepted")  # at the end of the cut round


def round_cut(rounds: list[RoundRecord], budget: int) -> RoundRecord | None:
    """The round in which the budget was reached, else the last one (None: no round yet)."""
    for r in rounds:
        if r.totals["evaluated"] >= budget:
            return r
    return rounds[-1] if rounds else None


def run_measures(store: RunStore, budget: int, top: int, threshold: float) -> dict:
    """Counts, best reward, anytime points, Phase II passes and the Phase III choice of a run
    (after check_run). Phase III results are joined later, by fingerprint."""
    rounds = store.rounds()
    cut = round_cut(rounds, budget)
    if cut is None:
        raise ValueError(f"run {store.path} has no completed round")
    round_end = {r.round: r.get("elapsed") for r in rounds}
    rows = store.evaluated(through_round=cut.round)
    evaluated = sorted((r for r in rows if r.evaluation <= budget), key=lambda r: r.evaluation)
    distinct = [r for r in distinct_evaluated(rows) if r.evaluation <= budget]
    passing = [r for r in distinct if r.passes(threshold)]
    rewards = [r.reward for r in evaluated]
    return {
        **{k: cut.totals[k] for k in COUNTS},
        "evaluated": len(evaluated),  # within the budget, not the whole cut round
        "rounds": cut.round + 1,
        "elapsed": cut.get("elapsed"),
        "reached_budget": len(evaluated) >= budget,
        "best_reward": max(rewards) if rewards else None,
        "distinct": len(distinct),
        "passing": len(passing),
        # anytime points: (evaluation index, reward) and (search seconds at its round's end, reward)
        "by_evaluation": [[r.evaluation, r.reward] for r in evaluated],
        "by_time": [[round_end[r.round], r.reward] for r in evaluated],
        "validation_by_round": _changes([[r.round, r.get("validation")] for r in rounds if r.round <= cut.round]),
        "chosen": [{"id": r.id, "fingerprint": r.fingerprint, "program": [list(s) for s in r.program],
                    "formula": r.formula, "eps": r.eps, "reward": r.reward, "evaluation": r.evaluation}
                   for r in store.best_passing(top, budget)],
    }


def _changes(points: list[list]) -> list[list]:
    """A step curve by its change points (and its last point): the recommender's validation metric
    changes only in the rounds where it moves, a few dozen of thousands."""
    return [p for i, p in enumerate(points) if i in (0, len(points) - 1) or p[1] != points[i - 1][1]]
