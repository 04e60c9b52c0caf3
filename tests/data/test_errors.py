"""Bad data: one-line `DataError` (a `ValueError`) naming file, row and problem."""

import pytest

from lossgen.data import DataError, load


def check(path, pattern, **options):
    with pytest.raises(DataError, match=pattern) as info:
        load(path, **options)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)
    return str(info.value)


GOOD = "user,item,rating,timestamp\n1,10,4,100\n1,11,2,101\n"


def test_good_csv_loads(tmp_path, write):
    ds = load(write(tmp_path / "r.csv", GOOD))
    assert (ds.n_users, ds.n_items, len(ds.train)) == (1, 2, 2)  # 2 interactions < 5: all train


def test_named_columns_and_separator(tmp_path, write):
    p = write(tmp_path / "r.tsv", "uid\tmovie\tstars\twhen\n3\t10\t5\t9\n3\t11\t1\t8\n")
    ds = load(p, user_col="uid", item_col="movie", rating_col="stars", time_col="when")
    assert ds.statistics.positive == 1 and ds.item_ids.tolist() == [10, 11]
    p = write(tmp_path / "r2.csv", "u;i;r\n3;10;5\n")
    assert load(p, user_col="u", item_col="i", rating_col="r", time_col=None, sep=";").n_users == 1


def test_missing_column(tmp_path, write):
    msg = check(write(tmp_path / "r.csv", "user,item,score,timestamp\n1,2,3,4\n"), r"missing column 'rating' \(rating\)")
    assert "'score'" in msg  # says what the file does have


def test_non_numeric_id(tmp_path, write):
    check(write(tmp_path / "r.csv", GOOD + "u7,12,3,102\n"), r"r\.csv, row 4: column 'user' is not a number: 'u7'")


def test_fractional_id(tmp_path, write):
    check(write(tmp_path / "r.csv", GOOD + "1,12.5,3,102\n"), r"row 4: column 'item' must be an integer, got '12.5'")


def test_non_numeric_rating(tmp_path, write):
    check(write(tmp_path / "r.csv", GOOD + "1,12,good,102\n"), r"row 4: column 'rating' is not a number: 'good'")


def test_nan_and_empty_cells(tmp_path, write):
    check(write(tmp_path / "a.csv", GOOD + "1,12,nan,102\n"), r"row 4: missing value \(NaN\) in column 'rating'")
    check(write(tmp_path / "b.csv", "user,item,rating,timestamp\n1,10,,100\n"), r"row 2: missing value \(NaN\) in column 'rating'")
    check(write(tmp_path / "c.csv", GOOD + "1,12,inf,102\n"), r"row 4: column 'rating' is infinite")


def test_empty_files(tmp_path, write):
    check(write(tmp_path / "a.csv", ""), r"a\.csv: empty file")
    check(write(tmp_path / "b.csv", "user,item,rating,timestamp\n"), r"b\.csv: empty file")


def test_movielens_format_errors(tmp_path, write):
    p = write(tmp_path / "ml" / "u.data", "1\t2\t3\t4\n1\t2\tx\t5\n")
    check(p, r"u\.data, row 2: column 'rating' is not a number: 'x'")
    p = write(tmp_path / "ml2" / "u.data", "1\t2\t3\t4\n1\t2\t3\n")
    check(p, r"u\.data, row 2: 3 fields, expected 4 \(user, item, rating, timestamp")


def test_split_file_errors(tmp_path, write):
    d = tmp_path / "sp"
    write(d / "x.train.csv", "uid\tiid\tlabel\n1\t2\t1\n1\t3\t0.5\n")
    write(d / "x.validation.csv", "uid\tiid\tlabel\n1\t2\t1\n")
    write(d / "x.test.csv", "uid\tiid\tlabel\n1\t2\t1\n")
    check(d, r"x\.train\.csv, row 3: label must be 0 or 1, got '0\.5'")
    write(d / "x.train.csv", "uid\titem\tlabel\n1\t2\t1\n")
    check(d, r"x\.train\.csv: missing column 'iid'")


def test_unknown_dataset_name():
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load("nope")
