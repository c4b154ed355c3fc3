"""Reads exported files back with clients nobody here wrote (pandas, openpyxl) and checks them
against what the Rust test computed: `check_files.py SPEC.json`. Prints each check that failed
and exits 1 if any did.

SPEC is a list of checks, each one of:
- {"kind": "csv", "path", "sep", "decimal", "encoding", "columns", "times_utc", "time_column",
   "values", "value_column", "extra": {column: [values as text]}}
- {"kind": "xlsx", "path", "sheets", "data_sheet", "columns", "local_times", "time_column",
   "values", "value_column", "extra": {column: [...]}, "chart": bool, "title": str}
- {"kind": "parquet", "path", "columns", "types": {column: arrow type}, "timezone", "times_utc",
   "local_times", "values", "counts" (or null: none), "extra": {column: [values as text]}}: read by
   pyarrow (and pandas on it) and by DuckDB; the first column is the time, the second its local
   wall time, the third the value, the fifth the count
"""
import json
import math
import sys
import zipfile

import openpyxl
import pandas as pd

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
    return condition


def same_numbers(got, want, what):
    if not check(len(got) == len(want), f"{what}: {len(got)} values, {len(want)} expected"):
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            ok = g is None or (isinstance(g, float) and math.isnan(g))
        else:
            ok = g is not None and not (isinstance(g, float) and math.isnan(g)) and float(g) == float(w)
        if not check(ok, f"{what}[{i}]: {g!r}, expected {w!r}"):
            return


def values_and_texts(frame, spec, kind):
    """The value column's numbers, and the other columns named in `extra` as text."""
    same_numbers(
        [None if pd.isna(v) else float(v) for v in frame[spec["value_column"]]],
        spec["values"],
        f"{kind} values",
    )
    for column, values in spec.get("extra", {}).items():
        got = ["" if pd.isna(v) else str(v) for v in frame[column]]
        check(got == values, f"{kind} {column}: first differing at {first_difference(got, values)}")


def csv_file(spec):
    frame = pd.read_csv(
        spec["path"],
        sep=spec["sep"],
        decimal=spec["decimal"],
        encoding=spec["encoding"],
        dtype={c: str for c in spec.get("extra", {})},
        keep_default_na=True,
    )
    check(list(frame.columns) == spec["columns"], f"csv columns {list(frame.columns)} != {spec['columns']}")
    times = pd.to_datetime(frame[spec["time_column"]], utc=True, format="ISO8601")
    got = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    check(got == spec["times_utc"], f"csv times: first differing at {first_difference(got, spec['times_utc'])}")
    values_and_texts(frame, spec, "csv")


def xlsx_file(spec):
    book = openpyxl.load_workbook(spec["path"])
    check(book.sheetnames == spec["sheets"], f"sheets {book.sheetnames} != {spec['sheets']}")
    sheet = book[spec["data_sheet"]]
    check(sheet.freeze_panes == "A2", f"frozen at {sheet.freeze_panes}, not below the header")
    width = len(spec["columns"])
    last = len(spec["values"]) + 1
    want_filter = f"A1:{openpyxl.utils.get_column_letter(width)}{last}"
    check(sheet.auto_filter.ref == want_filter, f"autofilter {sheet.auto_filter.ref} != {want_filter}")
    header = [c.value for c in sheet[1]]
    check(header == spec["columns"], f"header {header} != {spec['columns']}")
    check(all(c.font.b for c in sheet[1]), "the header is not bold")
    for i in range(width):
        letter = openpyxl.utils.get_column_letter(i + 1)
        w = sheet.column_dimensions[letter].width
        check(w is not None and w >= 8, f"column {letter} has no width set ({w})")
    time_letter = openpyxl.utils.get_column_letter(spec["columns"].index(spec["time_column"]) + 1)
    check(sheet.column_dimensions[time_letter].width >= 23, "the time column is too narrow for its date-times")
    check(book.properties.title == spec["title"], f"title {book.properties.title!r} != {spec['title']!r}")
    check(book.properties.created is not None, "no creation time")
    with zipfile.ZipFile(spec["path"]) as archive:
        charts = [n for n in archive.namelist() if n.startswith("xl/charts/chart")]
        sheets = [n for n in archive.namelist() if n.startswith("xl/chartsheets/sheet")]
    if spec["chart"]:
        check(len(charts) == 1 and len(sheets) == 1, f"expected one chart on a chart sheet: {charts} {sheets}")
        check(type(book[spec["sheets"][-1]]).__name__ == "Chartsheet", "the last sheet is not a chart sheet")
    else:
        check(not charts, f"unexpected charts {charts}")
    frame = pd.read_excel(spec["path"], sheet_name=spec["data_sheet"])
    check(list(frame.columns) == spec["columns"], f"xlsx columns {list(frame.columns)} != {spec['columns']}")
    got = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in frame[spec["time_column"]]]
    check(got == spec["local_times"], f"xlsx times: first differing at {first_difference(got, spec['local_times'])}")
    values_and_texts(frame, spec, "xlsx")


def parquet_file(spec):
    import duckdb
    import pyarrow.parquet as pq

    table = pq.read_table(spec["path"])
    check(table.column_names == spec["columns"], f"parquet columns {table.column_names} != {spec['columns']}")
    types = {f.name: str(f.type) for f in table.schema}
    check(types == spec["types"], f"parquet types {types} != {spec['types']}")
    zone = (table.schema.metadata or {}).get(b"timezone", b"").decode()
    check(zone == spec["timezone"], f"parquet timezone {zone!r} != {spec['timezone']!r}")
    time, local, value, offset, count = spec["columns"][:5]
    frame = table.to_pandas()
    got = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in frame[time]]
    check(got == spec["times_utc"], f"pyarrow times: first differing at {first_difference(got, spec['times_utc'])}")
    got = [t.strftime("%Y-%m-%dT%H:%M:%S") for t in frame[local]]
    check(got == spec["local_times"], f"pyarrow local times: first differing at {first_difference(got, spec['local_times'])}")
    same_numbers([None if pd.isna(v) else float(v) for v in frame[value]], spec["values"], "pyarrow values")
    counts = spec["counts"] or [None] * len(spec["values"])
    same_numbers([None if pd.isna(v) else int(v) for v in frame[count]], counts, "pyarrow counts")
    for column, values in spec.get("extra", {}).items():
        got = ["" if v is None else str(v) for v in table.column(column).to_pylist()]
        check(got == values, f"pyarrow {column}: first differing at {first_difference(got, values)}")

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    path = spec["path"].replace("'", "''")
    names = [d[0] for d in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
    check(names == spec["columns"], f"duckdb columns {names} != {spec['columns']}")
    rows = con.execute(
        f"""SELECT strftime("{time}", '%Y-%m-%dT%H:%M:%SZ'), strftime("{local}", '%Y-%m-%dT%H:%M:%S'),
                   "{value}", "{offset}", "{count}" FROM read_parquet('{path}')"""
    ).fetchall()
    got = [r[0] for r in rows]
    check(got == spec["times_utc"], f"duckdb times: first differing at {first_difference(got, spec['times_utc'])}")
    got = [r[1] for r in rows]
    check(got == spec["local_times"], f"duckdb local times: first differing at {first_difference(got, spec['local_times'])}")
    same_numbers([r[2] for r in rows], spec["values"], "duckdb values")
    got = [r[3] for r in rows]
    check(got == spec["extra"][offset], f"duckdb offsets: first differing at {first_difference(got, spec['extra'][offset])}")
    same_numbers([r[4] for r in rows], counts, "duckdb counts")


def first_difference(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"row {i}: {g!r} != {w!r}"
    return f"lengths {len(got)} != {len(want)}"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        specs = json.load(f)
    for spec in specs:
        {"csv": csv_file, "xlsx": xlsx_file, "parquet": parquet_file}[spec["kind"]](spec)
    for failure in failures:
        print(failure)
    print(f"checked {len(specs)} files with pandas {pd.__version__} and openpyxl {openpyxl.__version__}: "
          f"{len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
