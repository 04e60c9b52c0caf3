"""MovieLens files are read strictly: a damaged copy is refused, never used as MovieLens."""

import pytest

from lossgen.data import DataError, load, read_movielens

GOOD = "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{880000000 + 10 * u + i}\n" for u in range(1, 4) for i in range(1, 5))


def refused(path, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        read_movielens(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


def test_a_good_file_reads(tmp_path, write):
    r = read_movielens(write(tmp_path / "u.data", GOOD))
    assert len(r) == 12 and r.ratings.min() >= 1 and r.ratings.max() <= 5


def test_a_windows_line_end_is_fine(tmp_path, write):
    assert len(read_movielens(write(tmp_path / "u.data", GOOD.replace("\n", "\r\n")))) == 12


def test_cut_mid_line_with_four_fields_is_refused(tmp_path, write):
    # the timestamp of the last row lost its last digits: 4 fields, but no line end
    p = write(tmp_path / "u.data", GOOD[:-3])
    refused(p, r"row 12: the file ends without a line end, so its last line may be cut short")


def test_cut_mid_line_with_fewer_fields_is_refused(tmp_path, write):
    p = write(tmp_path / "u.data", GOOD + "4\t2")
    refused(p, r"row 13: the last line is cut short \(2 of 4 fields and no line end\)")


def test_wrong_field_counts_and_blank_lines(tmp_path, write):
    lines = GOOD.splitlines(keepends=True)
    refused(write(tmp_path / "a" / "u.data", "".join(lines[:3] + ["1\t2\t3\t4\t5\n"] + lines[3:])),
            r"row 4: 5 fields, expected 4")
    refused(write(tmp_path / "b" / "u.data", "".join(lines[:2] + ["\n"] + lines[2:])), r"row 3: empty line")
    refused(write(tmp_path / "c" / "u.data", "1,2,3,4\n"), r"row 1: 1 fields, expected 4")


@pytest.mark.parametrize("row, pattern", [
    ("1\t2\t6\t880000000\n", r"row 13: rating 6 is outside 1\.\.5"),
    ("1\t2\t0\t880000000\n", r"row 13: rating 0 is outside 1\.\.5"),
    ("1\t2\t-3\t880000000\n", r"row 13: rating -3 is outside 1\.\.5"),
    ("0\t2\t3\t880000000\n", r"row 13: user id 0 is not positive"),
    ("1\t-7\t3\t880000000\n", r"row 13: item id -7 is not positive"),
])
def test_values_outside_the_movielens_ranges(tmp_path, write, row, pattern):
    refused(write(tmp_path / "u.data", GOOD + row), pattern)


def test_a_cut_file_found_by_name_is_refused_not_split(tmp_path, write):
    write(tmp_path / "ml-100k" / "u.data", GOOD[:-3])
    with pytest.raises(DataError, match="ends without a line end"):
        load("ml-100k", data_dir=tmp_path, download=False)
