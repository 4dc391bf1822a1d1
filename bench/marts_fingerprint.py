"""The sha256 of the sorted rows of every table in every schema of a warehouse, as JSON: two
warehouses built from the same landing files and seed must print the same, whatever code change
came between (a reorganisation, a refactor).

    .venv/bin/python bench/marts_fingerprint.py data/warehouse/valuetier.duckdb > before.json
"""

import hashlib
import json
import sys

import duckdb


def fingerprint(path: str) -> dict[str, str]:
    with duckdb.connect(path, read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "ORDER BY ALL"
        ).fetchall()
        digests = {}
        for schema, table in tables:
            digest = hashlib.sha256()
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL').fetchall():
                digest.update(repr(row).encode())
            digests[f"{schema}.{table}"] = digest.hexdigest()
        return digests


if __name__ == "__main__":
    print(json.dumps(fingerprint(sys.argv[1]), indent=1, sort_keys=True))
