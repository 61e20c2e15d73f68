"""Public interaction datasets as one table shape: user, item, rating, timestamp.

Each MovieLens release has its own file layout; the loaders hide that so the split, the models
and the metrics never know which release they run on. Nothing is downloaded: the caller points
`data_dir` at unpacked archives (e.g. `data_dir/ml-100k/u.data`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

COLUMNS = ("user", "item", "rating", "timestamp")
_TYPES = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}


def _read_separated(source: Path | io.BytesIO, delimiter: str) -> pa.Table:
    return pacsv.read_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=list(COLUMNS)),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types=_TYPES),
    )


def _read_u_data(path: Path) -> pa.Table:
    return _read_separated(path, "\t")


def _read_ratings_dat(path: Path) -> pa.Table:
    # Arrow's CSV reader takes one-character delimiters only; "::" never occurs inside a field.
    return _read_separated(io.BytesIO(path.read_bytes().replace(b"::", b"\t")), "\t")


def _read_ratings_csv(path: Path) -> pa.Table:
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=["userId", "movieId", "rating", "timestamp"]
        ),
    )
    return _normalise(table.rename_columns(list(COLUMNS)), path)


def _read_generic(path: Path) -> pa.Table:
    if path.suffix in {".parquet", ".pq"}:
        return _normalise(pq.read_table(path), path)
    return _normalise(pacsv.read_csv(path), path)


def _normalise(table: pa.Table, path: Path) -> pa.Table:
    """Select and type the four columns; a missing rating counts 1, a missing timestamp 0."""
    missing = {"user", "item"} - set(table.column_names)
    if missing:
        raise ValueError(f"{path} has no column(s) {sorted(missing)}; it has {table.column_names}")
    n = table.num_rows
    rating = table["rating"] if "rating" in table.column_names else pa.array(np.ones(n))
    stamp = (
        table["timestamp"] if "timestamp" in table.column_names else pa.array(np.zeros(n, np.int64))
    )
    return pa.table(
        {
            "user": table["user"],
            "item": table["item"],
            "rating": pc.cast(rating, pa.float64()),
            "timestamp": pc.cast(stamp, pa.int64()),
        }
    )


# Dataset name → (file inside its directory, reader). The directory is named like the dataset,
# as the GroupLens archives unpack.
LAYOUTS: dict[str, tuple[str, Callable[[Path], pa.Table]]] = {
    "ml-100k": ("u.data", _read_u_data),
    "ml-1m": ("ratings.dat", _read_ratings_dat),
    "ml-latest": ("ratings.csv", _read_ratings_csv),
    "ml-latest-small": ("ratings.csv", _read_ratings_csv),
}
_GENERIC_SUFFIXES = {".csv", ".parquet", ".pq"}


def resolve(dataset: str, data_dir: str | Path | None = None) -> Path:
    """The file `dataset` names: a MovieLens layout under data_dir, or an interactions file.

    `data_dir` may be the parent of the unpacked archive or the archive directory itself.
    """
    base = Path(data_dir) if data_dir is not None else Path.cwd()
    if dataset in LAYOUTS:
        filename = LAYOUTS[dataset][0]
        candidates = [base / dataset / filename, base / filename]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{dataset}: no {filename} at {candidates[0]} or {candidates[1]}; unpack the "
                f"GroupLens {dataset} archive under the data directory"
            )
        return found
    path = Path(dataset)
    if path.suffix not in _GENERIC_SUFFIXES:
        raise ValueError(
            f"unknown dataset {dataset!r}: use one of {', '.join(LAYOUTS)} or a .csv / .parquet "
            "file with columns user,item[,rating][,timestamp]"
        )
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise FileNotFoundError(f"interactions file {path} does not exist")
    return path


def load_interactions(dataset: str, data_dir: str | Path | None = None) -> pa.Table:
    """Rows in file order (the split's seeded shuffle depends on it), columns as COLUMNS."""
    path = resolve(dataset, data_dir)
    reader = LAYOUTS[dataset][1] if dataset in LAYOUTS else _read_generic
    return reader(path)
