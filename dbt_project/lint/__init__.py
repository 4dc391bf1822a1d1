"""What dbt puts in a model's Jinja, for sqlfluff's jinja templater (dbt_project/.sqlfluff): the
project's vars, dispatch resolved as on DuckDB (duckdb__<macro>, else default__<macro>) and dbt's
cross-database macros as dbt-duckdb renders them, so that the linter reads the SQL dbt runs
without starting dbt (sqlfluff's dbt templater pins an older sqlfluff and click than the lock's).
Only `make lint` loads it."""

from pathlib import Path
from types import SimpleNamespace

import yaml
from jinja2 import pass_context

_VARS = yaml.safe_load((Path(__file__).parents[1] / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]


def var(name, default=None):
    return _VARS.get(name, default)


def env_var(name, default=""):
    return default  # linted as a run without the variable: the profile's and the macros' defaults


@pass_context
def _dispatch(context, macro_name, macro_namespace=None):
    return context.get(f"duckdb__{macro_name}") or context[f"default__{macro_name}"]


def _raise_compiler_error(message):
    raise ValueError(message)


adapter = SimpleNamespace(dispatch=_dispatch)
exceptions = SimpleNamespace(raise_compiler_error=_raise_compiler_error)
target = SimpleNamespace(type="duckdb", name="duckdb", schema="main")
dbt = SimpleNamespace(
    dateadd=lambda datepart, interval, from_date: f"date_add({from_date}, interval ({interval}) {datepart})",
    date_trunc=lambda datepart, date: f"date_trunc('{datepart}', {date})",
    datediff=lambda first, second, datepart: f"date_diff('{datepart}', {first}, {second})",
    last_day=lambda date, datepart: f"last_day({date})",
    type_string=lambda: "varchar",
    concat=lambda fields: " || ".join(fields),
    hash=lambda field: f"md5(cast({field} as varchar))",
)
# `{{ return(x) }}` ends a dbt macro with a value; here the value is the macro's text.
globals()["return"] = lambda value: value
