"""Runs SQL steps in chDB (the ClickHouse engine as a library) for sinks/clickhouse/chdb_test.go.

Usage: chdb_run.py STEPS.json. STEPS.json is a list of {"sql": "..."} objects, run in order in
one session; the output of each (TSV, empty for statements) is printed as a JSON list of
strings. A failing step prints {"step": i, "sql": ..., "error": ...} and exits 1.
"""

import json
import sys
import tempfile

from chdb import session

steps = json.load(open(sys.argv[1]))
out = []
with tempfile.TemporaryDirectory() as path:
    s = session.Session(path)
    for i, step in enumerate(steps):
        try:
            res = s.query(step["sql"], "TSV")
        except Exception as e:  # chDB raises RuntimeError with the server's message
            print(json.dumps({"step": i, "sql": step["sql"], "error": str(e)}))
            sys.exit(1)
        out.append(res.bytes().decode() if res is not None else "")
    s.close()
print(json.dumps(out))
