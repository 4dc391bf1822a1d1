"""Personal data as keyed hashes: HMAC-SHA256 (RFC 2104) under the secret PII key, computed where
the data is loaded, so names, national ids, phones and e-mails never reach a warehouse table, a
quarantine record, a log or a dbt file in clear. Without the key nobody can test a guessed name or
phone number against a hash; with it, the bank can link its own records to ValueTier's."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from duckdb.sqltypes import VARCHAR

BLOCK = 64  # SHA-256's block size in bytes
NORMALISE_FUNCTION = "valuetier_pii_normalised"  # `normalised` as the SQL sees it (install_keyed_hash)


def normalised(value: str) -> str:
    """What is hashed, the one normalisation of Python and SQL (the SQL calls this very function):
    Unicode NFKC, so full-width digits and letters and the ideographic space U+3000 of Chinese-
    language extracts become their plain forms and a letter with a combining accent one character;
    every run of whitespace (tab, newline, any Unicode space) one space and none at either end; lower
    case. ' Ann\tLee ', 'ann lee' and 'ＡＮＮ\u3000LEE' hash alike."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).lower()


def keyed_hash(value: str | None, key: str) -> str | None:
    """The HMAC-SHA256 of the normalised value, as 64 hex digits (the reference the SQL matches)."""
    if value is None:
        return None
    return hmac.new(key.encode(), normalised(value).encode(), hashlib.sha256).hexdigest()


def padded_key_blocks(key: str) -> tuple[bytes, bytes]:
    """HMAC's inner and outer blocks of the key (RFC 2104): what the SQL carries instead of the key,
    and what a leak of it would look like."""
    raw = key.encode()
    raw = hashlib.sha256(raw).digest() if len(raw) > BLOCK else raw
    raw = raw.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def keyed_hash_sql(expression: str, key: str) -> str:
    """The same HMAC as a DuckDB expression over a VARCHAR expression: sha256 of the outer padded key
    and of the inner digest (DuckDB has sha256 over bytes, not HMAC). The key enters the SQL only as
    the two padded blocks; use it through install_keyed_hash, so no query text carries it."""
    inner, outer = (block.hex() for block in padded_key_blocks(key))
    value = f"{NORMALISE_FUNCTION}(CAST({expression} AS VARCHAR))"
    return (
        f"CASE WHEN {expression} IS NULL THEN NULL ELSE sha256(unhex('{outer}') || "
        f"unhex(sha256(unhex('{inner}') || encode({value})))) END"
    )


def install_keyed_hash(con, name: str, key: str) -> None:
    """A connection-local macro `name(value)` computing keyed_hash: the queries that hash personal
    data name the macro, so an error message quoting a query never shows the key's padded blocks.
    A TEMP macro is never stored in the warehouse file."""
    registered = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [NORMALISE_FUNCTION]
    ).fetchall()[0][0]
    if not registered:  # the same function whatever the key: registered once per connection
        con.create_function(NORMALISE_FUNCTION, normalised, [VARCHAR], VARCHAR, side_effects=False)
    con.execute(f"CREATE OR REPLACE TEMP MACRO {name}(v) AS ({keyed_hash_sql('v', key)})")
