"""The comparison's statistics on a fixed, hand-made example (no training involved)."""

import math

import pytest

from lossgen.compare.plan import ComparePlan
from lossgen.compare.summary import join_phase3, summarize

PLAN = ComparePlan(strategies=("a", "b"), seeds=(0, 1, 2), budget=4)


def run(best_reward, chosen, elapsed=10.0, by_evaluation=None):
    by_evaluation = by_evaluation or [[1, best_reward]]
    return {"sampled": 100, "evaluated": 4, "zero_gradient": 10, "duplicates": 86, "accepted": 1, "rounds": 10,
            "elapsed": elapsed, "reached_budget": True, "best_reward": best_reward, "distinct": 4, "passing": 2,
            "by_evaluation": by_evaluation, "by_time": [[elapsed, best_reward]], "validation_by_round": [[0, 0.7]],
            "chosen": [{"id": f"c{fp}", "fingerprint": fp, "program": "", "formula": fp, "reward": r, "evaluation": 1}
                       for fp, r in chosen]}


def phase3(entries, reference=("BCE", 0.70, 0.80)):
    results = [{"name": f"loss-{fp}", "kind": "candidate", "fingerprint": fp, "formula": fp, "validation": v,
                "test": [t], "test_mean": t, "test_std": 0.0, "epochs": [1], "vs_reference": None}
               for fp, (v, t) in entries.items()]
    name, v, t = reference
    results.append({"name": name, "kind": "baseline", "fingerprint": None, "formula": name, "validation": v,
                    "test": [t], "test_mean": t, "test_std": 0.0, "epochs": [1], "vs_reference": None})
    return {"metric": "auc", "reference": name, "results": results, "runs": 1, "epochs_trained": 1}


# fingerprint -> (Phase III validation, Phase III test)
P3 = phase3({"p": (0.75, 0.78), "q": (0.76, 0.77), "r": (0.70, 0.83), "s": (0.72, 0.81), "t": (0.74, 0.82)})
MEASURES = {
    # strategy a: best loss on validation is q (0.76) although r has the better test value
    "a-s0": run(0.10, [("p", 0.10), ("q", 0.05), ("r", 0.01)], by_evaluation=[[1, -0.02], [3, 0.10]]),
    "a-s1": run(0.20, [("p", 0.20)]),
    "a-s2": run(0.30, [("s", 0.30)]),
    "b-s0": run(0.05, [("t", 0.05)], by_evaluation=[[2, 0.05]]),
    "b-s1": run(0.10, [("r", 0.10)]),
    "b-s2": run(0.15, [("s", 0.15)]),
}


@pytest.fixture
def summary():
    measures = {k: {**v, "chosen": [dict(c) for c in v["chosen"]]} for k, v in MEASURES.items()}
    return summarize(PLAN, measures, P3), measures


def test_the_best_loss_is_chosen_on_validation_not_test(summary):
    _, measures = summary
    assert measures["a-s0"]["best_loss"]["fingerprint"] == "q"
    assert measures["a-s0"]["best_test"] == 0.77
    assert measures["a-s0"]["vs_baseline"] == pytest.approx(0.77 - 0.80)


def test_per_strategy_mean_and_spread(summary):
    s, _ = summary
    a = s["per_strategy"]["a"]
    assert a["best_reward"]["mean"] == pytest.approx(0.2)
    assert a["best_reward"]["std"] == pytest.approx(0.1)
    assert (a["best_reward"]["min"], a["best_reward"]["max"]) == (0.1, 0.3)
    # best tests: a = q 0.77, p 0.78, s 0.81; b = t 0.82, r 0.83, s 0.81
    assert a["best_test"]["mean"] == pytest.approx((0.77 + 0.78 + 0.81) / 3)
    assert s["per_strategy"]["b"]["best_test"]["mean"] == pytest.approx((0.82 + 0.83 + 0.81) / 3)
    assert a["reached_budget"] == 3


def test_paired_tests_between_strategies(summary):
    s, _ = summary
    reward = next(c for c in s["paired"] if c["measure"] == "best_reward")
    assert (reward["a"], reward["b"], reward["n"]) == ("a", "b", 3)
    assert reward["mean_difference"] == pytest.approx(((0.10 - 0.05) + (0.20 - 0.10) + (0.30 - 0.15)) / 3)
    assert (reward["wins"], reward["ties"], reward["losses"]) == (3, 0, 0)
    assert reward["wilcoxon_p"] == pytest.approx(0.25) and reward["min_p"] == pytest.approx(0.25)
    test = next(c for c in s["paired"] if c["measure"] == "best_test")
    # differences -0.05, -0.05, 0 -> one tie dropped, two losses
    assert (test["wins"], test["ties"], test["losses"]) == (0, 1, 2)
    assert test["wilcoxon_p"] == pytest.approx(0.5) and test["min_p"] == pytest.approx(0.5)
    lo, hi = test["interval"]
    assert lo <= test["mean_difference"] <= hi <= 0


def test_against_the_best_baseline(summary):
    s, _ = summary
    assert s["reference"] == "BCE" and s["reference_test"] == 0.80
    b = s["vs_baseline"]["b"]
    assert b["mean_difference"] == pytest.approx((0.02 + 0.03 + 0.01) / 3)
    assert (b["wins"], b["losses"]) == (3, 0)


def test_proxy_fidelity_is_spearman_over_run_candidate_pairs(summary):
    s, _ = summary
    f = s["fidelity"]
    assert f["spearman"]["all"]["n"] == 8  # a: 3 + 1 + 1, b: 1 + 1 + 1
    # strategy b: rewards 0.05, 0.10, 0.15 against tests 0.82, 0.83, 0.81 -> ranks (1,2,3) vs (2,3,1)
    assert f["spearman"]["b"]["test"] == pytest.approx(-0.5)
    # validation 0.74, 0.70, 0.72 -> ranks (3,1,2)
    assert f["spearman"]["b"]["validation"] == pytest.approx(-0.5)


def test_anytime_curves_band_over_seeds(summary):
    s, _ = summary
    curves = s["curves"]
    assert curves["evaluations"] == [1.0, 2.0, 3.0, 4.0]
    a = curves["strategies"]["a"]["by_evaluation"]
    # a-s0 has -0.02 at 1 and 0.10 from 3; a-s1 0.20, a-s2 0.30 from 1
    assert a["mean"][0] == pytest.approx((-0.02 + 0.20 + 0.30) / 3)
    assert a["mean"][2] == pytest.approx((0.10 + 0.20 + 0.30) / 3)
    b = curves["strategies"]["b"]["by_evaluation"]
    assert b["n"][0] == 2 and b["n"][1] == 3  # b-s0 has nothing before its 2nd evaluation
    assert b["mean"][0] == pytest.approx(0.125)


def test_regression_chooses_the_lowest_validation_rmse():
    p3 = phase3({"p": (0.95, 0.97), "q": (0.90, 0.99)}, reference=("MSE", 0.93, 0.96))
    p3["metric"] = "rmse"
    measures = {"x": run(0.1, [("p", 0.1), ("q", 0.05)])}
    join_phase3(measures, p3)
    assert measures["x"]["best_loss"]["fingerprint"] == "q"
    assert measures["x"]["vs_baseline"] == pytest.approx(0.99 - 0.96)
    assert not math.isnan(measures["x"]["best_test"])


def test_without_baselines_the_report_leaves_the_baseline_parts_out():
    from lossgen.compare.report import markdown

    p3 = {**P3, "reference": None, "results": [e for e in P3["results"] if e["kind"] == "candidate"]}
    measures = {k: {**v, "chosen": [dict(c) for c in v["chosen"]]} for k, v in MEASURES.items()}
    s = summarize(PLAN, measures, p3)
    assert s["reference_test"] is None and s["vs_baseline"]["a"]["n"] == 0
    assert all(m["vs_baseline"] is None for m in measures.values())
    md = markdown(PLAN, measures, s, p3, None)
    assert "Best loss against the best baseline" not in md and "vs None" not in md
    assert "## Proxy fidelity" in md


def test_a_run_without_a_best_loss_is_left_out_of_its_strategys_cells_and_said_so():
    from lossgen.compare.report import markdown

    measures = {k: {**v, "chosen": [dict(c) for c in v["chosen"]]} for k, v in MEASURES.items()}
    measures["b-s1"]["chosen"] = []  # nothing passed Phase II
    s = summarize(PLAN, measures, P3)
    assert measures["b-s1"]["best_test"] is None
    assert s["per_strategy"]["b"]["best_test"]["n"] == 2
    assert s["per_strategy"]["b"]["best_test"]["mean"] == pytest.approx((0.82 + 0.81) / 2)
    test = next(c for c in s["paired"] if c["measure"] == "best_test")
    assert test["n"] == 2  # seed 1 has no pair
    assert "(2 of 3 seeds)" in markdown(PLAN, measures, s, P3, None)


def test_for_rmse_a_lower_test_value_is_a_win():
    p3 = {**P3, "metric": "rmse", "reference": "BCE"}
    measures = {k: {**v, "chosen": [dict(c) for c in v["chosen"]]} for k, v in MEASURES.items()}
    s = summarize(PLAN, measures, p3)
    # lowest validation RMSE is chosen: a-s0 -> r (0.70, test 0.83); a: 0.83, 0.78, 0.81; b: 0.82, 0.83, 0.81
    test = next(c for c in s["paired"] if c["measure"] == "best_test")
    assert test["mean_difference"] == pytest.approx(((0.83 - 0.82) + (0.78 - 0.83) + 0) / 3)
    assert (test["wins"], test["ties"], test["losses"]) == (1, 1, 1)  # a lower in seed 1, higher in seed 0
    reward = next(c for c in s["paired"] if c["measure"] == "best_reward")
    assert reward["wins"] == 3  # rewards are utilities: higher is better whatever the metric
    assert (s["vs_baseline"]["b"]["wins"], s["vs_baseline"]["b"]["losses"]) == (0, 3)  # all above 0.80
