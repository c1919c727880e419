#!/usr/bin/env python3
"""Replay statements on chdb (ClickHouse 26.x in process), one session, in order.

Usage:
    python chdb_replay.py JOB.json

The tests use it to run the schema's migrations and the repository's reads on a modern ClickHouse
exactly as the live 18.16 server receives them. JOB.json is a list of steps, each an object:
    {"sql": "...", "tables": [{"name": "lookup_ids", "native": "/abs/t.native"}], "out": "/abs/r.native"}
        runs sql; each table (a Native file) is first loaded as a temporary table of that name, as
        ClickHouse does with the external tables sent with a query, and dropped afterwards; with
        "out", the answer is written there in Native format.
    {"insert": "db.table", "native": "/abs/rows.native"}
        inserts the file's rows (its columns by name) as one INSERT, so one part per step.

Stops at the first failing step: prints "step N: <error>" on stderr and exits 1. Exit 2 on bad usage.
"""

import os

os.environ["TZ"] = "UTC"

import time  # noqa: E402

time.tzset()

import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from chdb import session  # noqa: E402


def quoted(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def columns_of(sess, native):
    described = sess.query("DESCRIBE file(%s, Native)" % quoted(native), "JSONEachRow").bytes()
    return [json.loads(line)["name"] for line in described.decode().splitlines() if line]


def run_step(sess, step):
    if "insert" in step:
        names = ", ".join(identifier(name) for name in columns_of(sess, step["native"]))
        sess.query("INSERT INTO %s (%s) SELECT %s FROM file(%s, Native)" % (step["insert"], names, names, quoted(step["native"])))
        return
    tables = step.get("tables", [])
    for table in tables:
        sess.query("CREATE TEMPORARY TABLE %s AS SELECT * FROM file(%s, Native)" % (identifier(table["name"]), quoted(table["native"])))
    try:
        if "out" in step:
            answer = sess.query(step["sql"], "Native").bytes()
            with open(step["out"], "wb") as out:
                out.write(answer)
        else:
            sess.query(step["sql"])
    finally:
        for table in tables:
            sess.query("DROP TEMPORARY TABLE IF EXISTS %s" % identifier(table["name"]))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1]) as job:
        steps = json.load(job)
    with tempfile.TemporaryDirectory() as data:
        sess = session.Session(data)
        try:
            for number, step in enumerate(steps):
                try:
                    run_step(sess, step)
                except Exception as error:  # chdb raises its own error types; report any with the step
                    print("step %d: %s" % (number, error), file=sys.stderr)
                    return 1
        finally:
            sess.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
