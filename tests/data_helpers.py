"""Small data directories for the CLI data tests: a MovieLens-format file made by the synthetic
generator (never the real MovieLens), and a foreign split directory."""

from pathlib import Path

import pytest

from lossgen.data import SyntheticConfig, generate, sources


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No implicit data dir, and no network (as on a machine without one); yields the URLs a
    command tried to download, and fails the test if there was one. (Autouse in every module
    that imports it.)"""
    monkeypatch.delenv("LOSSGEN_DATA_DIR", raising=False)
    tried = []

    def no_network(url):
        tried.append(url)
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(sources, "fetch", no_network)
    yield tried
    assert not tried, "a download was attempted"


def movielens_text(users: int = 60, items: int = 80, seed: int = 0) -> str:
    r = generate(SyntheticConfig(users=users, items=items, seed=seed))
    return "".join(f"{u}\t{i}\t{int(x)}\t{t}\n" for u, i, x, t in zip(r.users, r.items, r.ratings, r.timestamps))


def movielens_dir(root: Path, text: str | None = None) -> Path:
    """`root/ml-100k/u.data` (a stand-in for MovieLens 100K); returns `root`, the --data-dir."""
    (root / "ml-100k").mkdir(parents=True, exist_ok=True)
    (root / "ml-100k" / "u.data").write_text(movielens_text() if text is None else text)
    return root


def foreign_split(root: Path, name: str = "ncr", unknown_item: bool = True) -> Path:
    """A split directory in the AutoLossGen/NCR authors' format (raw ids, no NAME.info.json);
    validation and test mention an item train never saw unless `unknown_item` is False."""
    lines = movielens_text().splitlines()
    rows = [line.split("\t") for line in lines]
    train, validation, test = rows[: -40], rows[-40:-20], rows[-20:]
    seen = {r[1] for r in train}
    keep = lambda part: [r for r in part if r[1] in seen and r[0] in {t[0] for t in train}]  # noqa: E731
    validation, test = keep(validation), keep(test)
    if unknown_item:
        validation.append([train[0][0], "1543", "5", "0"])
        test.append([train[0][0], "1544", "1", "0"])
    root.mkdir(parents=True, exist_ok=True)
    for part, part_rows in (("train", train), ("validation", validation), ("test", test)):
        text = "uid\tiid\tlabel\ttime\n" + "".join(f"{u}\t{i}\t{int(int(x) > 3)}\t{t}\n" for u, i, x, t in part_rows)
        (root / f"{name}.{part}.csv").write_text(text)
    return root
