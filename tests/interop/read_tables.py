"""Reads snapshot views as an analyst does and prints their rows as JSON, for tests/snapshot.rs.

Usage: read_tables.py VIEW_ROOT COLUMN... : the view's Delta table (a directory, or an s3://
URI with the AWS_* variables set) read by the `deltalake` package and by DuckDB (locally over
the files the table's log lists; on S3 over the table `deltalake` read, as DuckDB's own S3
support is an extension it downloads); prints {"deltalake": [[window, COLUMN...], ...],
"duckdb": [...]}, each sorted.
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
    arrow = table.to_pyarrow_table()
    by_deltalake = rows(arrow, columns)
    selected = ", ".join(f'"{c}"' for c in ["window", *columns])
    if root.startswith("s3://"):
        by_duckdb = duckdb.sql(f"select {selected} from arrow").fetch_arrow_table()
    else:
        # the files the table's log says are current, the window from their path
        files = table.file_uris()
        by_duckdb = duckdb.sql(
            f"select {selected} from read_parquet({files!r}, hive_partitioning = true,"
            " hive_types_autocast = false)"
        ).fetch_arrow_table()
    print(json.dumps({"deltalake": by_deltalake, "duckdb": rows(by_duckdb, columns)}))


if __name__ == "__main__":
    main()
