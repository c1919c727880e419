#!/usr/bin/env python3
"""Read Native files back through chdb (in-process ClickHouse) and write their JSONEachRow.

Usage:
    python chdb_native_to_json.py [--settings-json FILE] OUT_DIR FILE...

For each FILE (raw Native bytes, not compressed) this runs
    SELECT * FROM file('<absolute path>', Native) SETTINGS max_threads=1, session_timezone='UTC'[, ...]
with TZ=UTC and writes OUT_DIR/<basename without .native>.jsonl. If chdb raises, it writes
OUT_DIR/<basename without .native>.error with the error text instead and goes on.

--settings-json FILE: a JSON object mapping a basename (with or without the .native suffix)
to a dict of extra settings for that file's read query, e.g. {"nested_flatten_off": {"flatten_nested": 0}}.
Fixtures/native/readback_settings.json is such a file for the chdb-written fixtures.

Exit status: 0 when every file was read, 1 when at least one .error file was written, 2 on bad usage.
"""

import os

os.environ["TZ"] = "UTC"

import time  # noqa: E402

time.tzset()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import chdb  # noqa: E402

# max_threads=1: with more threads chdb may read the blocks of one file in parallel and return
# rows out of order (seen with a file of four one-row blocks).
BASE_SETTINGS = {"max_threads": 1, "session_timezone": "UTC"}


def sql_value(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def stem(path):
    name = Path(path).name
    return name[: -len(".native")] if name.endswith(".native") else name


def read_query(path, settings):
    literal = str(Path(path).resolve()).replace("\\", "\\\\").replace("'", "\\'")
    clause = ", ".join("%s=%s" % (k, sql_value(v)) for k, v in sorted(settings.items()))
    return "SELECT * FROM file('%s', Native) SETTINGS %s" % (literal, clause)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings-json", type=Path, help="JSON object: basename -> settings dict")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()

    per_file = {}
    if args.settings_json:
        per_file = json.loads(args.settings_json.read_text(encoding="utf-8"))
        if not isinstance(per_file, dict):
            ap.error("--settings-json must hold a JSON object")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.files:
        base = stem(path)
        settings = dict(BASE_SETTINGS)
        settings.update(per_file.get(base, per_file.get(Path(path).name, {})))
        error_file = args.out_dir / (base + ".error")
        json_file = args.out_dir / (base + ".jsonl")
        try:
            if Path(path).stat().st_size == 0:
                data = b""  # an empty Native stream: zero blocks, zero rows
            else:
                data = chdb.query(read_query(path, settings), "JSONEachRow").bytes()
        except Exception as e:  # chdb raises its own error types; record any of them
            failures += 1
            error_file.write_text("%s: %s\n" % (type(e).__name__, e), encoding="utf-8")
            if json_file.exists():
                json_file.unlink()
            continue
        json_file.write_bytes(data)
        if error_file.exists():
            error_file.unlink()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
