"""Reads snapshot views as an analyst does and prints their rows as JSON, for tests/snapshot.rs.

Usage: read_tables.py FORMAT VIEW_ROOT COLUMN... : the view's table (FORMAT `delta` or
`iceberg`; VIEW_ROOT a directory, or an s3:// URI with the AWS_* variables set; or FORMAT
`iceberg-rest` and VIEW_ROOT `<catalog URI>#<product id>/<view>`, the table loaded by name from
an Iceberg REST catalog; or FORMAT `iceberg-sql` and VIEW_ROOT `<SQLite file>#<product
id>/<view>`, the table loaded by name from an Iceberg SQL catalog) read by the format's Python package (`deltalake`, `pyiceberg`) and by
DuckDB (for a local Delta table over
the files its log lists; otherwise over the table the package read, as DuckDB's own S3 and
Iceberg support are extensions it downloads); prints
{"<package>": [[window, COLUMN...], ...], "duckdb": [...]}, each sorted.
"""

import json
import os
import sys

import duckdb


def rows(table, columns):
    data = table.select(["window", *columns]).to_pylist()
    return sorted([[row["window"], *[row[c] for c in columns]] for row in data], key=json.dumps)


def read_delta(root):
    from deltalake import DeltaTable

    table = DeltaTable(root)
    return "deltalake", table.to_pyarrow_table(), None if root.startswith("s3://") else table.file_uris()


def s3_properties():
    """pyiceberg's settings for the S3 server the AWS_* variables name, if they do."""
    if "AWS_ENDPOINT_URL" not in os.environ:
        return {}
    return {
        "s3.endpoint": os.environ["AWS_ENDPOINT_URL"],
        "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "s3.region": os.environ["AWS_REGION"],
    }


def read_iceberg(root):
    from pyiceberg.table import StaticTable

    table = StaticTable.from_metadata(root, properties=s3_properties())
    return "pyiceberg", table.scan().to_arrow(), None


def read_iceberg_sql(root):
    from pyiceberg.catalog.sql import SqlCatalog

    path, name = root.split("#")
    product, view = name.rsplit("/", 1)
    domain, product_name = product.split(".", 1)
    # the catalog's file as is: a reader creates nothing in it
    catalog = SqlCatalog("meshline", uri=f"sqlite:///{path}", init_catalog_tables="false", **s3_properties())
    assert (domain, product_name, view) in catalog.list_tables((domain, product_name)), view
    table = catalog.load_table(f"{product}.{view}")
    return "pyiceberg-sql", table.scan().to_arrow(), None


def read_iceberg_rest(root):
    from pyiceberg.catalog.rest import RestCatalog

    uri, name = root.split("#")
    product, view = name.rsplit("/", 1)
    domain, product_name = product.split(".", 1)
    catalog = RestCatalog("meshline", uri=uri, **s3_properties())
    # the catalog lists the table under the product's namespace
    assert (domain, product_name, view) in catalog.list_tables((domain, product_name)), view
    table = catalog.load_table(f"{product}.{view}")
    return "pyiceberg-rest", table.scan().to_arrow(), None


def main():
    format, root, columns = sys.argv[1], sys.argv[2], sys.argv[3:]
    package, arrow, files = {
        "delta": read_delta,
        "iceberg": read_iceberg,
        "iceberg-rest": read_iceberg_rest,
        "iceberg-sql": read_iceberg_sql,
    }[format](root)
    selected = ", ".join(f'"{c}"' for c in ["window", *columns])
    if files is None:
        by_duckdb = duckdb.sql(f"select {selected} from arrow").fetch_arrow_table()
    else:
        # the files the table's log says are current, the window from their path
        by_duckdb = duckdb.sql(
            f"select {selected} from read_parquet({files!r}, hive_partitioning = true,"
            " hive_types_autocast = false)"
        ).fetch_arrow_table()
    print(json.dumps({package: rows(arrow, columns), "duckdb": rows(by_duckdb, columns)}))


if __name__ == "__main__":
    main()
