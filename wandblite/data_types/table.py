"""``Table`` (wandb.Table): rows of cells, stored as one JSON blob.

The blob is ``{"columns": [...], "data": [[...], ...]}`` (NaN/inf written as JSON's extended
``NaN``/``Infinity``, as wandb does). A cell may hold media (``Image``, ``Audio``, ...): its bytes
are stored and the cell holds its history JSON. A torch tensor cell is written as wandb writes it
(``_base.tensor_cell``: a one-element tensor is its number, any other its nested list). The history value is
``{"_type": "table-file", "path", "sha256", "size", "ncols", "nrows", "log_mode": "IMMUTABLE"}``
plus ``blob``/``offset``. More than ``MAX_ROWS`` rows are truncated with a warning when logged.

pandas is never imported: a DataFrame is recognised by its class's module and read with its own
methods.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from wandblite.data_types._base import Media, is_torch_tensor, jsonable, log, store_bytes, tensor_to_numpy
from wandblite.errors import DataError

if TYPE_CHECKING:
    from wandblite.media import MediaStore

__all__ = ["Table"]

DEFAULT_COLUMNS = ["Input", "Output", "Expected"]


def _is_dataframe(value: Any) -> bool:
    cls = type(value)
    return cls.__module__.startswith("pandas") and cls.__name__ == "DataFrame"


class Table(Media):
    """wandb.Table: ``Table(columns=[...], data=[[...], ...])``, ``add_data``, ``add_column``."""

    _log_type = "table-file"
    MAX_ROWS = 10000

    def __init__(
        self,
        columns: Sequence[Any] | None = None,
        data: Any = None,
        rows: Any = None,
        dataframe: Any = None,
        dtype: Any = None,
        optional: Any = True,
        allow_mixed_types: bool = False,
        log_mode: str | None = None,
    ) -> None:
        if rows is not None and data is None:
            data = rows
        if dataframe is None and _is_dataframe(data):
            dataframe, data = data, None
        if dataframe is not None:
            if not _is_dataframe(dataframe):
                raise DataError(f"dataframe must be a pandas DataFrame, got {type(dataframe).__name__}")
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.to_numpy(dtype=object).tolist()
        if is_torch_tensor(data):  # wandb walks its rows; their cells become numbers (tensor_cell)
            data = tensor_to_numpy(data)
        if isinstance(data, np.ndarray):
            if data.ndim != 2:
                raise DataError(f"Table data from a numpy array must be 2-D, got shape {list(data.shape)}")
            data = data.tolist()
        if data is not None and not isinstance(data, (list, tuple)):
            raise DataError(f"Table data must be a list of rows, got {type(data).__name__}")
        if columns is None:
            width = len(data[0]) if data and isinstance(data[0], (list, tuple)) else 3
            columns = DEFAULT_COLUMNS if width == 3 else [f"Column_{i + 1}" for i in range(width)]
        if isinstance(columns, (str, bytes)) or not isinstance(columns, (list, tuple)):
            raise DataError("Table columns must be a list of names")
        self.columns: list[str] = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise DataError(f"Table column names must be unique: {self.columns}")
        self.data: list[list[Any]] = []
        for row in data or []:
            self.add_data(*self._row(row))
        self.log_mode = log_mode or "IMMUTABLE"

    @staticmethod
    def _row(row: Any) -> Sequence[Any]:
        if is_torch_tensor(row):
            row = tensor_to_numpy(row)
        if isinstance(row, np.ndarray):
            return row.tolist()
        if not isinstance(row, (list, tuple)):
            raise DataError(f"each Table row must be a list, got {type(row).__name__}")
        return row

    def add_data(self, *data: Any) -> None:
        """Append one row (one value per column)."""
        if len(data) != len(self.columns):
            raise DataError(
                f"This table expects {len(self.columns)} columns: {self.columns}, found {len(data)}"
            )
        for i, cell in enumerate(data):
            if isinstance(cell, Table):
                raise DataError(f"column {self.columns[i]!r}: a Table cannot be a cell of another Table")
        self.data.append(list(data))

    add_row = add_data

    def add_column(self, name: str, data: Sequence[Any], optional: bool = False) -> None:
        """Append a column; ``data`` holds one value per existing row."""
        if not isinstance(name, str) or name in self.columns:
            raise DataError("Column name must be a unique string")
        values = data.tolist() if isinstance(data, np.ndarray) else list(data)
        if not self.columns and not self.data:
            self.data = [[v] for v in values]
        elif len(values) != len(self.data):
            raise DataError(f"Expected length {len(self.data)}, found {len(values)}")
        else:
            for row, v in zip(self.data, values, strict=True):
                row.append(v)
        self.columns.append(name)

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """The values of one column as a list (``convert_to="numpy"`` for an array)."""
        if name not in self.columns:
            raise DataError(f"Table has no column {name!r}; columns are {self.columns}")
        i = self.columns.index(name)
        col = [row[i] for row in self.data]
        if convert_to == "numpy":
            return np.array(col)
        return col

    def get_index(self) -> list[int]:
        return list(range(len(self.data)))

    def iterrows(self) -> Iterator[tuple[int, list[Any]]]:
        yield from enumerate(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def get_dataframe(self) -> Any:
        """The table as a pandas DataFrame (its columns, one row per row), as wandb's ``get_dataframe``."""
        import pandas as pd  # only when asked for: pandas is not a dependency of the SDK

        return pd.DataFrame.from_records([list(r) for r in self.data], columns=list(self.columns))

    def _cell(self, value: Any, store: MediaStore, key: str, step: int, col: str) -> Any:
        if isinstance(value, Media):
            return value.to_json(store, key, step)
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], Media):
            return [self._cell(v, store, key, step, col) for v in value]
        return jsonable(value, f"Table column {col!r}")

    def table_bytes(self, store: MediaStore, key: str, step: int) -> tuple[bytes, int]:
        """The table file's bytes (media cells stored first) and the number of rows kept."""
        rows = self.data
        if len(rows) > self.MAX_ROWS:
            log.warning(f"Truncating wandb.Table object to {self.MAX_ROWS} rows.")
            rows = rows[: self.MAX_ROWS]
        cols = self.columns
        encoded = [[self._cell(v, store, key, step, cols[i]) for i, v in enumerate(r)] for r in rows]
        text = json.dumps({"columns": cols, "data": encoded}, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8"), len(rows)

    def to_json(self, store: MediaStore, key: str, step: int) -> dict[str, Any]:
        data, nrows = self.table_bytes(store, key, step)
        ref = store_bytes(store, data, "table.json", "table", key, step)
        out: dict[str, Any] = {"_type": "table-file", "path": ref.pop("path"), "sha256": ref.pop("sha256")}
        out["size"] = ref.pop("size")
        out["ncols"] = len(self.columns)
        out["nrows"] = nrows
        out["log_mode"] = self.log_mode
        out.update(ref)
        return out
