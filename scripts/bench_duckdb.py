"""The pipeline benchmark's DuckDB side: the same two jobs over the same reader pages.

usage: bench_duckdb.py DIR raw|buckets OUT
Prints one line: points, seconds, points per second, peak RSS (this process).
"""
import resource
import sys
import time

import duckdb

directory, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET TimeZone = 'Europe/Rome'")
con.execute("SET preserve_insertion_order = false")
source = f"""
    (SELECT unnest(messages) AS m
     FROM read_json('{directory}/page-*.json', format = 'auto', maximum_object_size = 1000000000))
"""
if mode == "raw":
    query = f"""
        SELECT to_timestamp(m.time) AS time, m.value AS value, m.name AS name, m.unit AS unit
        FROM {source} ORDER BY time
    """
else:
    query = f"""
        SELECT time_bucket(INTERVAL '15 minutes', to_timestamp(m.time), 'Europe/Rome') AS time,
               avg(m.value) AS avg, stddev_samp(m.value) AS stddev, count(*) AS count
        FROM {source} GROUP BY 1 ORDER BY 1
    """
started = time.perf_counter()
con.execute(f"COPY ({query}) TO '{out}' (HEADER, DELIMITER ',')")
seconds = time.perf_counter() - started
points = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{mode:8} duckdb: {points} points in {seconds:.2f} s = {points / seconds:.0f} points/s, peak RSS {peak_mib:.1f} MiB")
