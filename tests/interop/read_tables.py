"""Reads snapshot views as an analyst does and prints their rows as JSON, for tests/snapshot.rs.

Usage: read_tables.py VIEW_DIR COLUMN... : the view's Delta table read by the `deltalake`
package and, through the table's current files, by DuckDB; prints
{"deltalake": [[window, COLUMN...], ...], "duckdb": [...]}, each sorted.
"""

import json
import sys

import duckdb
from deltalake import DeltaTable


def rows(table, columns):
    data = table.select(["window", *columns]).to_pylist()
    return sorted([[row["window"], *[row[c] for c in columns]] for row in data], key=json.dumps)


def main():
    root, columns = sys.argv[1], sys.argv[2:]
    table = DeltaTable(root)
    by_deltalake = rows(table.to_pyarrow_table(), columns)
    # DuckDB over the files the table's log says are current, the window from their path
    files = table.file_uris()
    selected = ", ".join(f'"{c}"' for c in ["window", *columns])
    by_duckdb = duckdb.sql(
        f"select {selected} from read_parquet({files!r}, hive_partitioning = true,"
        " hive_types_autocast = false)"
    ).fetch_arrow_table()
    print(json.dumps({"deltalake": by_deltalake, "duckdb": rows(by_duckdb, columns)}))


if __name__ == "__main__":
    main()
