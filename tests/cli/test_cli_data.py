"""`lossgen data stats|prepare`: output, files written, and one-line user errors."""

import json

import pytest
from typer.testing import CliRunner

from cli_helpers import private_cache  # noqa: F401  (autouse fixture: a private data cache)
from lossgen.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch):
    """No implicit MovieLens directory (so nothing is found by accident)."""
    monkeypatch.delenv("LOSSGEN_DATA_DIR", raising=False)


def test_stats_synthetic():
    result = runner.invoke(app, ["data", "stats", "synthetic:users=60,items=80"])
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output and "density" in result.output and "validation" in result.output


def test_stats_json():
    result = runner.invoke(app, ["data", "stats", "synthetic:users=60,items=80", "--json"])
    data = json.loads(result.output)
    assert data["users"] == 60 and 0 < data["density"] < 1


def test_prepare_writes_split_files(tmp_path):
    out = tmp_path / "split"
    result = runner.invoke(app, ["data", "prepare", "synthetic:users=60,items=80", "--out", str(out), "--name", "syn"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["syn.info.json", "syn.test.csv", "syn.train.csv", "syn.validation.csv"]
    again = runner.invoke(app, ["data", "stats", str(out)])
    assert again.exit_code == 0 and "60" in again.output


def test_prepare_ratings_csv_with_named_columns(tmp_path):
    csv = tmp_path / "log.csv"
    csv.write_text("who,what,stars,when\n" + "".join(f"{u},{i},{(u + i) % 5 + 1},{i}\n" for u in range(3) for i in range(8)))
    result = runner.invoke(app, ["data", "prepare", str(csv), "--out", str(tmp_path / "o"), "--user-col", "who",
                                 "--item-col", "what", "--rating-col", "stars", "--time-col", "when"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "log.train.csv").is_file()


def test_user_errors_are_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating,timestamp\n1,2,x,3\n")
    for args, message in [
        (["data", "stats", "nope"], "unknown dataset 'nope'"),
        (["data", "stats", str(bad)], "bad.csv, row 2: column 'rating' is not a number"),
        (["data", "stats", "synthetic:users=0"], "users must be >= 1"),
        (["data", "stats", "ml-100k", "--data-dir", str(tmp_path), "--no-download"], "put u.data at DIR/ml-100k/u.data"),
        (["data", "prepare", "synthetic", "--out", str(bad)], "exists and is not a directory"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output
