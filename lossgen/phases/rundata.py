"""Where a run's data came from, and reading it again for later phases.

A run's config.json names its dataset by the spec the user gave (`ml-100k`, a path, ...) and
identifies the prepared data by its split key (`data_key`). Where that spec resolved to (the
absolute path of the ratings file or split directory read, and the `--data-dir` given) is kept
apart, in the run's meta under `"data"`: it is not part of the run's identity, so a run resumed
with another `--data-dir` that holds the same data (or a run made before this record existed)
still resumes. Each search updates it to where the data was read this time.

`run_dataset(store, data_dir)` reads the data again for Phase III (`lossgen evaluate RUN`): from
`data_dir` when given, else from the recorded location, else (older runs) by the spec as before.
The data read must have the run's split key; anything else is a `DataError` saying what to do.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from lossgen.data import DataError, Dataset, load

DATA_META = "data"


def data_record(dataset: Dataset, spec: str, data_dir=None) -> dict:
    """What to remember about where a dataset was read from (JSON-ready)."""
    return {"spec": str(spec), "origin": dataset.origin, "source": dataset.source, "key": dataset.key,
            "data_dir": None if data_dir is None else str(Path(data_dir).expanduser().absolute())}


def remember_data(store, dataset: Dataset, spec: str, data_dir=None) -> None:
    """Record in the run's meta where its data was read from (outside the config's identity)."""
    store.set_meta(DATA_META, data_record(dataset, spec, data_dir))


def load_remembered(spec: str, data_dir=None, record: dict | None = None, owner: str = "the run", *,
                    download: bool = True) -> Dataset:
    """`spec` from `data_dir` when given, else from `record["origin"]` (where `owner` read it
    before), else looked up as usual (a record without a location: generated data, older runs)."""
    origin = None if data_dir is not None or not record else record.get("origin")
    if origin is None:
        return load(spec, data_dir, download=download)
    if not Path(origin).exists():
        raise DataError(f"{owner} read its data ({spec}) from {origin}, which is no longer there; pass --data-dir DIR "
                        f"with the directory that now holds it")
    return load(spec, origin=origin, download=download)


def check_key(dataset: Dataset, expected: str | None, spec: str, owner: str, data_dir=None,
              record: dict | None = None) -> None:
    """A `DataError` when the data read is not the data `owner` used (its split key differs)."""
    if expected is None or dataset.key == expected:
        return
    if data_dir is None and record and record.get("origin"):
        what = f"the data at {record['origin']} has changed since {owner} used it"
    else:
        what = f"{spec!r} as found now ({dataset.source}) is not the data {owner} used"
    raise DataError(f"{what} (split key {dataset.key}, expected {expected}); pass --data-dir DIR with the directory "
                    f"that holds the original data")


def run_dataset(store, data_dir=None, *, download: bool = True) -> Dataset:
    """The dataset a run searched on, read again (see the module's docstring)."""
    spec = store.config["dataset"]
    record = store.get_meta(DATA_META)
    owner = f"run {store.path}"
    with warnings.catch_warnings(record=True) as caught:  # held back: data the run cannot use gets one line, its error
        warnings.simplefilter("always")
        dataset = load_remembered(spec, data_dir, record, owner, download=download)
    check_key(dataset, store.config.get("data_key"), spec, owner, data_dir, record)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return dataset
