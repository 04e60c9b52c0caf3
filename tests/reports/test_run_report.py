import csv
import os
import sqlite3

import matplotlib.image
import pytest
from typer.testing import CliRunner

from lossgen.cli import app
from lossgen.ir.formula import parse
from lossgen.reports.run import load_run, phase2_survivors, write_report
from lossgen.runs import CandidateRecord, RunSnapshot, RunStore

CONFIG = {"dataset": "synthetic", "model": "mf", "task": "classification", "clamp": "paper", "strategy": "rl",
          "seed": 7, "search": {"rounds": 3, "samples": 4}, "train": {"lr": 0.01}}
PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("metrics.png", "sampled.png", "positive_rates.png", "rewards.png")

# (id, fingerprint, proxy, reward, duplicate_of, phase2 rate); evaluation index follows the order.
ROUNDS = [
    [("a", "fa", "passed", 0.010, None, 0.95), ("b", "fb", "zero-gradient", None, None, None),
     ("c", "fc", "passed", -0.020, None, 0.40), ("d", "fa", "duplicate", 0.010, "a", 0.95)],
    [("e", "fe", "passed", 0.050, None, 0.99), ("f", "ff", "passed", 0.030, None, 0.91),
     ("g", "fb", "zero-gradient", None, None, None), ("h", "fc", "passed", 0.005, None, 0.40)],
    [("i", "fi", "passed", 0.042, None, 0.20), ("j", "fe", "duplicate", 0.050, "e", 0.99),
     ("k", "fk", "passed", -0.001, None, 0.93), ("l", "fl", "zero-gradient", None, None, None)],
]
FORMULAS = {"fa": "y_hat + y", "fb": "y_hat - y_hat", "fc": "max(y_hat, y)", "fe": "(y_hat - y)^2",
            "ff": "log(y_hat + 1)", "fi": "min(y_hat, y) * y", "fk": "1 / (y_hat + 1)", "fl": "y - y"}


def make_run(path, rounds=ROUNDS, phases=True, config=CONFIG):
    store = RunStore.open_or_create(path, config)
    store.set_meta("initial", {"validation": 0.70, "train_metric": 0.72})
    evaluation, totals, best = 0, dict.fromkeys(("sampled", "evaluated", "zero_gradient", "duplicates"), 0), None
    for r, entries in enumerate(rounds):
        cands, rewards = [], []
        for cid, fp, proxy, reward, dup, _ in entries:
            evaluated = proxy == "passed"
            evaluation += evaluated
            cands.append(CandidateRecord(id=cid, round=r, program=parse(FORMULAS[fp]).steps, formula=FORMULAS[fp],
                                         fingerprint=fp,
                                         strategy="rl", state=proxy, duplicate_of=dup, reward=reward,
                                         accepted=cid == "e", evaluation=evaluation if evaluated else None,
                                         validation=0.7 + reward if evaluated else None, train_loss=0.5))
            rewards += [reward] if evaluated else []
        counts = {"sampled": len(entries), "evaluated": sum(e[2] == "passed" for e in entries),
                  "zero_gradient": sum(e[2] == "zero-gradient" for e in entries),
                  "duplicates": sum(e[2] == "duplicate" for e in entries)}
        totals = {k: totals[k] + counts[k] for k in totals}
        best = max([b for b in [best, *rewards] if b is not None], default=None)
        info = {**counts, "accepted": int(any(c.accepted for c in cands)), "best_reward": max(rewards, default=None),
                "moved_to": "e" if r == 1 else None, "validation": 0.71 + 0.02 * r, "train_metric": 0.73 + 0.03 * r,
                "metric": "auc", "elapsed": 90.0 * (r + 1), "totals": dict(totals), "best_so_far": best}
        store.commit_round(r, cands, info, {}, 1000.0 + r)
    if phases:
        store.set_phase2({e[0]: e[5] for entries in rounds for e in entries if e[5] is not None})
        store.set_meta("phase2", {"threshold": 0.9, "pairs": 2000})
        store.set_meta("phase3", {"metric": "auc", "reference": "BCE", "results": [
            {"name": "BCE", "candidate": None, "formula": "", "validation": 0.80, "test_mean": 0.79,
             "test_std": 0.01, "epochs": [20, 22]},
            {"name": "e", "candidate": "e", "formula": "(y_hat - y)^2", "validation": 0.81, "test_mean": 0.8123,
             "test_std": 0.004, "epochs": [30, 34]}]})
    store.close()
    return path


def table_rows(md, header_start):
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_full_report_files_numbers_and_order(tmp_path):
    run = make_run(tmp_path / "run")
    before = sorted(os.listdir(run))
    paths = write_report(run)
    out = run / "report"
    assert paths == [out / n for n in PLOTS] + [out / "candidates.csv", out / "survivors.csv", out / "report.md"]
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
        assert matplotlib.image.imread(out / name).ndim == 3
    # the run itself is untouched; SQLite's own -wal/-shm companions may appear beside a WAL database
    extra = set(os.listdir(run)) - set(before)
    assert extra <= {"report", "run.db-wal", "run.db-shm"} and "report" in extra
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    md = (out / "report.md").read_text()
    assert "| dataset | synthetic |" in md and "| strategy | rl |" in md and "| metric | AUC |" in md
    assert "`rounds=3`" in md and "`lr=0.01`" in md
    assert "- Rounds completed: 3 (rounds 0–2)" in md
    assert "- Search time: 270.0 s (4.5 min)" in md
    assert "- Candidates: 12 sampled, 7 evaluated, 3 zero-gradient, 2 duplicates" in md
    assert f"- Throughput: {12 / 270:.2f} sampled/s, {7 / 270:.2f} evaluated/s" in md
    assert "- Validation AUC: 0.7000 → 0.7500 (+0.0500, better)" in md
    assert "- Train AUC: 0.7200 → 0.7900 (+0.0700, better)" in md
    assert "- Best reward: 0.0500" in md

    rows = table_rows(md, "| rank |")
    # distinct by fingerprint, the first evaluation of each: a/d share "fa", e/j share "fe", c/h share
    # "fc" (c, evaluated first, stands for it, although h's later evaluation scored better); best first
    assert [r[1] for r in rows] == ["`e`", "`i`", "`f`", "`a`", "`k`", "`c`"]
    assert [r[3] for r in rows] == ["0.0500", "0.0420", "0.0300", "0.0100", "-0.0010", "-0.0200"]
    assert rows[0] == ["1", "`e`", "`(y_hat - y)^2`", "0.0500", "1", "0.990", "pass", "0.8123"]
    assert rows[1][5:] == ["0.200", "fail", "–"]
    assert rows[2][6] == "pass" and rows[4][6] == "pass" and rows[5][6] == "fail"
    assert "6 distinct evaluated candidates" in md
    assert "Threshold 0.9, 2000 pairs per candidate: 4 of 6 distinct evaluated candidates pass." in md

    p3 = table_rows(md, "| loss |")
    assert p3[0] == ["BCE", "", "", "0.8000", "0.7900 ± 0.0100", "21"]
    assert p3[1] == ["e", "`e`", "`(y_hat - y)^2`", "0.8100", "0.8123 ± 0.0040", "32"]
    assert "Reference baseline: BCE." in md
    for name in PLOTS:
        assert f"]({name})" in md

    with open(out / "candidates.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == 12 and [r["id"] for r in records] == list("abcdefghijkl")
    assert records[4]["phase2_rate"] == "0.99" and records[1]["reward"] == ""

    # the same run gives the same files
    first = {p.name: p.read_bytes() for p in paths}
    write_report(run, tmp_path / "again", top=3)
    assert len(table_rows((tmp_path / "again" / "report.md").read_text(), "| rank |")) == 3
    write_report(run, tmp_path / "again")
    assert {p.name: (tmp_path / "again" / p.name).read_bytes() for p in paths if p.suffix != ".md"} == \
        {k: v for k, v in first.items() if not k.endswith(".md")}
    assert (tmp_path / "again" / "report.md").read_text() == md


def test_before_phase_two_the_histogram_is_skipped(tmp_path):
    run = make_run(tmp_path / "run", phases=False)
    paths = write_report(run)
    names = [p.name for p in paths]
    assert "positive_rates.png" not in names and "metrics.png" in names and "rewards.png" in names
    md = (run / "report" / "report.md").read_text()
    assert "Phase II has not run yet" in md and "positive_rates.png" not in md.split("## Plots")[1]
    assert "Phase III" not in md
    rows = table_rows(md, "| rank |")
    assert rows[0][5:] == ["–", "–"] and len(rows[0]) == 7


def test_zero_rounds(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", CONFIG)
    store.close()
    paths = write_report(tmp_path / "run")
    assert [p.name for p in paths] == ["candidates.csv", "report.md"]
    md = paths[1].read_text()
    assert "No round has completed yet" in md and "## Plots" not in md
    assert paths[0].read_text().startswith("id,round,program,formula")
    assert len(paths[0].read_text().splitlines()) == 1


def test_not_a_run_directory_creates_nothing(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a lossgen run directory"):
        write_report(other)
    with pytest.raises(ValueError, match="not a lossgen run directory"):
        write_report(tmp_path / "missing")
    assert sorted(os.listdir(other)) == ["notes.txt"] and not (tmp_path / "missing").exists()
    (other / "config.json").write_text("{}")  # config without a database is not a run either
    with pytest.raises(ValueError, match="not a lossgen run directory"):
        load_run(other)
    assert sorted(os.listdir(other)) == ["config.json", "notes.txt"]


def test_corrupted_files_are_named(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "run.db").write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="run.db is unreadable"):
        write_report(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    sqlite3.connect(empty / "run.db").close()  # a database without the run's tables
    with pytest.raises(ValueError, match="run.db is unreadable"):
        write_report(empty)
    run = make_run(tmp_path / "run", rounds=ROUNDS[:1])
    (run / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        write_report(run)
    assert not (bad / "report").exists() and not (run / "report").exists()


def test_cli(tmp_path):
    runner = CliRunner()
    run = make_run(tmp_path / "run", rounds=ROUNDS[:2])
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "out"), "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "report.md" in result.output and "metrics.png" in result.output
    assert len(table_rows((tmp_path / "out" / "report.md").read_text(), "| rank |")) == 2
    for args, message in [([str(tmp_path / "nowhere")], "not a lossgen run directory"),
                          ([str(run), "--top", "0"], "--top must be at least 1")]:
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_sparse_rounds_and_unknown_config_keys(tmp_path):
    store = RunStore.open_or_create(tmp_path / "run", {"strategy": "random", "extra": [1, 2]})
    store.commit_round(0, [CandidateRecord(id="x", round=0, program=[[0, 0, 1]], formula="y | y_hat",
                                           strategy="random", state="passed", reward=0.1, evaluation=1)],
                       {}, {}, 1.0)
    store.commit_round(1, [], {"sampled": 3, "evaluated": 0, "validation": None}, {}, 2.0)
    store.close()
    paths = write_report(tmp_path / "run")
    assert [p.name for p in paths] == ["rewards.png", "candidates.csv", "report.md"]
    md = paths[-1].read_text()
    assert "- Rounds completed: 2 (rounds 0–1)" in md and "3 sampled, 0 evaluated" in md
    assert "`y \\| y_hat`" in md and "| metric | AUC |" in md


def test_load_run_is_a_snapshot_of_records(tmp_path):
    run = load_run(make_run(tmp_path / "run"))
    assert isinstance(run, RunSnapshot) and run.path == tmp_path / "run" and run.config == CONFIG
    assert all(isinstance(c, CandidateRecord) for c in run.candidates) and len(run.candidates) == 12
    assert [r.round for r in run.rounds] == [0, 1, 2] and run.rounds[1].moved_to == "e"
    assert run.rounds[-1].elapsed == 270.0 and run.rounds[-1].totals["sampled"] == 12
    assert run.metric == "auc" and run.threshold == 0.9 and run.phase3["reference"] == "BCE"
    # evaluated: every evaluation in order; distinct: the first evaluation of each fingerprint
    assert [c.id for c in run.evaluated()] == list("acefhik")
    assert [c.id for c in run.distinct_evaluated()] == list("acefik")


def test_table_8_lists_every_phase_two_survivor_with_its_verdict(tmp_path):
    # the symmetric clamp: there (y_hat - y)^2 is MSE (the paper's clamp changes it at y = 1)
    run = make_run(tmp_path / "run", config={**CONFIG, "clamp": "symmetric"})
    store = RunStore.open_existing(run)
    race = [{"name": "e", "eps": None, "epochs": 45, "validation": 0.79, "diverged": False, "groups": {"run": "survived"}},
            {"name": "f", "eps": 0.1, "epochs": 45, "validation": 0.78, "diverged": False, "groups": {"run": "survived"}},
            {"name": "f", "eps": 0.01, "epochs": 15, "validation": 0.77, "diverged": False, "groups": {"run": 15}},
            {"name": "a", "eps": None, "epochs": 15, "validation": 0.75, "diverged": False, "groups": {"run": 15}}]
    meta = store.get_meta("phase3")
    meta["results"].append({"name": "f", "candidate": "f", "formula": "log(y_hat + 1) with e = 0.1", "eps": 0.1,
                            "validation": 0.79, "test_mean": 0.801, "test_std": 0.002, "epochs": [40, 41]})
    store.set_meta("phase3", {**meta, "race": race, "selection": "race"})
    store.close()

    rows = phase2_survivors(load_run(run))
    # passing (rate >= 0.9), distinct: a, e, f, k; c and i fail Phase II
    assert [(r["candidate"], r["verdict"]) for r in rows] == [
        ("e", "works"), ("f", "does not work"), ("a", "dropped by the race"), ("k", "not selected")]
    e, f, a, k = rows
    assert e["named"] == "= MSE" and f["named"] is None and a["named"] is None
    assert e["validation"] == 0.81 and e["test_mean"] == 0.8123 and k["test_mean"] is None
    assert f["race"]["validation"] == 0.78 and f["race"]["eps"] == 0.1 and f["race"]["epochs"] == 45
    assert a["race"] == {"validation": 0.75, "eps": None, "epochs": 15, "survived": False, "diverged": False}
    assert k["race"] is None and k["formula"] == "1 / (y_hat + 1)"

    write_report(run)
    md = (run / "report" / "report.md").read_text()
    assert "4 distinct candidates passed Phase II: 1 works, 1 does not work, 1 dropped by the race, 1 not selected." in md
    assert "beats BCE's, the baseline best on validation" in md
    table = table_rows(md, "| verdict |")
    assert [r[0] for r in table] == ["works", "does not work", "dropped by the race", "not selected"]
    assert table[0][3] == "= MSE" and table[0][6:] == ["0.7900", "45 (survived)", "0.8100", "0.8123 ± 0.0040"]
    assert table[2][6:] == ["0.7500", "15 (dropped)", "–", "–"]
    assert table[3][6:] == ["–", "", "–", "–"]
    with open(run / "report" / "survivors.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [(r["candidate"], r["verdict"], r["race_fate"]) for r in records] == [
        ("e", "works", "survived"), ("f", "does not work", "survived"), ("a", "dropped by the race", "dropped"),
        ("k", "not selected", "")]
    assert records[0]["named"] == "= MSE" and records[0]["test_mean"] == "0.8123" and records[3]["test_mean"] == ""
    assert records[1]["race_eps"] == "0.1" and records[2]["race_epochs"] == "15"


def test_table_8_for_a_regression_run_ranks_lower_rmse_first(tmp_path):
    run = make_run(tmp_path / "run")
    store = RunStore.open_existing(run)
    store.set_meta("phase3", {"metric": "rmse", "reference": "MSE", "results": [
        {"name": "MSE", "candidate": None, "validation": 0.46, "test_mean": 0.45, "test_std": 0.0},
        {"name": "e", "candidate": "e", "formula": "(y_hat - y)^2", "validation": 0.47, "test_mean": 0.46},
        {"name": "f", "candidate": "f", "formula": "log(y_hat + 1)", "validation": 0.44, "test_mean": 0.43}]})
    store.close()
    snapshot = load_run(run)
    snapshot = RunSnapshot(snapshot.path, {**snapshot.config, "task": "regression"}, (), snapshot.candidates,
                           snapshot.meta)
    rows = phase2_survivors(snapshot)
    assert [(r["candidate"], r["verdict"]) for r in rows] == [
        ("f", "works"), ("e", "does not work"), ("a", "not selected"), ("k", "not selected")]


def test_without_baselines_trained_candidates_are_not_judged(tmp_path):
    run = make_run(tmp_path / "run")
    store = RunStore.open_existing(run)
    store.set_meta("phase3", {"metric": "auc", "reference": None, "results": [
        {"name": "e", "candidate": "e", "formula": "(y_hat - y)^2", "validation": 0.81, "test_mean": 0.8}]})
    store.close()
    rows = phase2_survivors(load_run(run))
    assert rows[0]["candidate"] == "e" and rows[0]["verdict"] == "trained, no baseline to judge by"
    write_report(run)
    assert "No baseline was trained next to them, so nothing is judged." in (run / "report" / "report.md").read_text()


def test_no_table_8_before_phase_three(tmp_path):
    run = make_run(tmp_path / "run", phases=False)
    assert phase2_survivors(load_run(run)) == []
    write_report(run)
    assert "Table 8" not in (run / "report" / "report.md").read_text()
