"""Datasets for lossgen: MovieLens 100K, a synthetic generator, split directories and ratings CSVs.

`load(name_or_path)` returns a `Dataset` with `train` and `validation` tensors; the test split is
read only by `Dataset.open_test()`. Preprocessing follows the paper (§5.1.1); see docs/data.md.
"""

from lossgen.data.dataset import Dataset, Split
from lossgen.data.errors import DataError
from lossgen.data.loader import DATASET_HELP, load, open_split_dir, parse_synthetic, prepare_to
from lossgen.data.ratings import Ratings, read_movielens, read_ratings_csv
from lossgen.data.sources import ML100K_SHA256, ML100K_URL, cache_dir, download_ml100k, locate_ml100k
from lossgen.data.split import Prepared, SplitSettings, leave_one_out, prepare
from lossgen.data.stats import Statistics
from lossgen.data.synthetic import SyntheticConfig, generate

__all__ = [
    "DATASET_HELP", "DataError", "Dataset", "ML100K_SHA256", "ML100K_URL", "Prepared", "Ratings", "Split",
    "SplitSettings", "Statistics", "SyntheticConfig", "cache_dir", "download_ml100k", "generate", "leave_one_out",
    "load", "locate_ml100k", "open_split_dir", "parse_synthetic", "prepare", "prepare_to", "read_movielens",
    "read_ratings_csv",
]
