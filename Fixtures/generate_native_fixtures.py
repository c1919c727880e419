#!/usr/bin/env python3
"""Golden fixtures for the Native column codecs, produced by chdb (in-process ClickHouse).

Usage:
    .venv/bin/python Fixtures/generate_native_fixtures.py            # (re)write Fixtures/native/
    .venv/bin/python Fixtures/generate_native_fixtures.py --check    # regenerate into a temp dir, compare
    .venv/bin/python Fixtures/generate_native_fixtures.py --only NAME [--only NAME ...] --out DIR

For every case in CASES this writes, into Fixtures/native/:
    <name>.native         chdb's Native output of the case's query (blocks back to back)
    <name>.jsonl          chdb's JSONEachRow output of the same query and settings
    <name>.hex.jsonl      (flag "bytes") the query with every top-level string column replaced by hex(col)
    <name>.native.zst     (flag "large", instead of .native/.jsonl) zstd -19 of the Native bytes
    <name>.summary.json   (flag "large") small expectation object, see README.md
and finally manifest.json and readback_settings.json.

All queries run with TZ=UTC and session_timezone='UTC'. Everything written is deterministic:
no random functions, JSON written with sorted keys, no timestamps.
"""

import os

os.environ["TZ"] = "UTC"

import time  # noqa: E402

time.tzset()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import chdb  # noqa: E402

HERE = Path(__file__).resolve().parent
NATIVE_DIR = HERE / "native"
# max_threads=1 keeps row and block order independent of the machine's core count.
BASE_SETTINGS = {"max_threads": 1, "session_timezone": "UTC"}
# What chdb_native_to_json.py always applies. max_threads=1 matters there: with more threads chdb
# may hand the blocks of one file to several threads and rows come back out of order.
READBACK_BASE_SETTINGS = {"max_threads": 1, "session_timezone": "UTC"}
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 30 * 1024 * 1024
ZSTD_LEVEL = 19

CASES = []


def case(name, sql, settings=None, flags=(), readback=None):
    """Register a case.

    settings: extra chdb settings for the query (appended as a SETTINGS clause).
    flags:    "bytes" (write hex companion), "large" (zstd + summary), "multiblock", "empty".
    readback: settings needed by chdb_native_to_json.py to read the chdb-written file back
              into the same JSON text (e.g. the time zone that the Native header drops).
    """
    assert name.replace("_", "").isalnum() and name == name.lower(), name
    assert all(c["name"] != name for c in CASES), "duplicate case " + name
    CASES.append(
        {
            "name": name,
            "sql": " ".join(sql.split()),
            "settings": dict(settings or {}),
            "flags": sorted(set(flags)),
            "readback": dict(readback or {}),
        }
    )


# ---------------------------------------------------------------------------------------------
# Integers: min / zero / max (plus a couple of interior values) for every width.
# ---------------------------------------------------------------------------------------------
INT_RANGES = {
    "Int8": ("-128", "127"),
    "Int16": ("-32768", "32767"),
    "Int32": ("-2147483648", "2147483647"),
    "Int64": ("-9223372036854775808", "9223372036854775807"),
    "Int128": ("-170141183460469231731687303715884105728", "170141183460469231731687303715884105727"),
    "Int256": (
        "-57896044618658097711785492504343953926634992332820282019728792003956564819968",
        "57896044618658097711785492504343953926634992332820282019728792003956564819967",
    ),
    "UInt8": ("0", "255"),
    "UInt16": ("0", "65535"),
    "UInt32": ("0", "4294967295"),
    "UInt64": ("0", "18446744073709551615"),
    "UInt128": ("0", "340282366920938463463374607431768211455"),
    "UInt256": ("0", "115792089237316195423570985008687907853269984665640564039457584007913129639935"),
}
for _t, (_lo, _hi) in INT_RANGES.items():
    _vals = [_lo, "0", "1", _hi] if _lo != "0" else ["0", "1", "2", _hi]
    if _lo != "0":
        _vals.insert(2, "-1")
    _arr = ", ".join("'%s'" % v for v in _vals)
    case(
        "int_%s_extremes" % _t.lower(),
        "SELECT CAST(arrayJoin([%s]) AS %s) AS v" % (_arr, _t),
    )

case(
    "int_all_widths_one_row",
    "SELECT toInt8(-1) AS i8, toInt16(-2) AS i16, toInt32(-3) AS i32, toInt64(-4) AS i64, "
    "toInt128(-5) AS i128, toInt256(-6) AS i256, toUInt8(1) AS u8, toUInt16(2) AS u16, "
    "toUInt32(3) AS u32, toUInt64(4) AS u64, toUInt128(5) AS u128, toUInt256(6) AS u256",
)
case(
    "int_uint64_sequence_1000",
    "SELECT number AS n, toInt32(number) - 500 AS i, toUInt8(number % 256) AS b FROM numbers(1000)",
)

# ---------------------------------------------------------------------------------------------
# Floats, BFloat16, Bool
# ---------------------------------------------------------------------------------------------
case(
    "float64_specials",
    "SELECT arrayJoin([0.0, -0.0, 1.0, -1.5, nan, inf, -inf, 5e-324, 2.2250738585072014e-308, "
    "1.7976931348623157e308, -1.7976931348623157e308, 0.1, 123456789.125]) AS f",
)
case(
    "float32_specials",
    "SELECT toFloat32(arrayJoin([0.0, -0.0, 1.0, -1.5, nan, inf, -inf, 1.401298464324817e-45, "
    "1.1754943508222875e-38, 3.4028234663852886e38, -3.4028234663852886e38, 0.1, 16777216.0])) AS f",
)
case(
    "float_negative_nan",
    "SELECT -nan AS f64, toFloat32(-nan) AS f32",
)
case(
    "bfloat16_values",
    "SELECT toBFloat16(arrayJoin([0.0, -0.0, 1.0, 1.5, -2.0, 3.140625, 65280.0, 1e-38, "
    "3.3895313892515355e38, nan, inf, -inf])) AS b",
)
case(
    "bool_values",
    "SELECT number % 3 = 0 AS b, CAST(number % 2 AS Bool) AS b2 FROM numbers(6)",
)

# ---------------------------------------------------------------------------------------------
# Decimals
# ---------------------------------------------------------------------------------------------
_DEC = [
    (9, 0, "999999999"),
    (9, 4, "99999.9999"),
    (9, 9, "0.999999999"),
    (18, 0, "999999999999999999"),
    (18, 6, "999999999999.999999"),
    (18, 18, "0.999999999999999999"),
    (38, 0, "99999999999999999999999999999999999999"),
    (38, 10, "9999999999999999999999999999.9999999999"),
    (38, 38, "0.99999999999999999999999999999999999999"),
    (76, 0, "9" * 76),
    (76, 20, "9" * 56 + "." + "9" * 20),
    (76, 76, "0." + "9" * 76),
]
for _p, _s, _max in _DEC:
    _vals = ["-" + _max, "-1", "0", "1", "0.5" if _s else "42", "-0." + "0" * (_s - 1) + "1" if _s else "-42", _max]
    if _s == _p:  # no integer digits: +-1 does not fit
        _vals = [v for v in _vals if v not in ("-1", "1")]
    case(
        "decimal_p%d_s%d_bounds" % (_p, _s),
        "SELECT CAST(arrayJoin([%s]) AS Decimal(%d, %d)) AS d" % (", ".join("'%s'" % v for v in _vals), _p, _s),
    )
case(
    "decimal_spellings",
    "SELECT toDecimal32(-12.345, 3) AS d32, toDecimal64(-1234567.891, 3) AS d64, "
    "toDecimal128('-123456789012345678901234567.89', 2) AS d128, "
    "toDecimal256('-1234567890123456789012345678901234567890123456789012345678901234567.89', 2) AS d256, "
    "CAST('1.5' AS Decimal32(1)) AS c32, CAST('1.5' AS Decimal64(1)) AS c64, "
    "CAST('1.5' AS Decimal128(1)) AS c128, CAST('1.5' AS Decimal256(1)) AS c256",
)
case(
    "decimal_many_rows",
    "SELECT toDecimal64(number, 2) / 7 AS d, toDecimal128(number, 5) - 50 AS d2 FROM numbers(100)",
)

# ---------------------------------------------------------------------------------------------
# Strings and FixedString
# ---------------------------------------------------------------------------------------------
case(
    "string_basic",
    "SELECT arrayJoin(['', 'a', 'hello world', 'with \"quotes\" and \\\\ backslash', "
    "'tab\\tnewline\\nend', 'slash/path', 'unicode: é ü 中文 日本語 🦀 👨‍👩‍👧']) AS s",
)
case(
    "string_empty_rows",
    "SELECT '' AS s FROM numbers(5)",
)
case(
    "string_long_100kb",
    "SELECT arrayJoin([repeat('abcdefghij', 10240), 'tail']) AS s, length(s) AS len",
)
case(
    "string_long_unicode",
    "SELECT repeat('€😀', 5000) AS s",
)
case(
    "string_all_byte_values_rows",
    "SELECT char(number) AS s FROM numbers(256)",
    flags=["bytes"],
)
case(
    "string_all_byte_values_one",
    "SELECT arrayStringConcat(arrayMap(i -> char(i), range(256))) AS s, "
    "reverse(s) AS r",
    flags=["bytes"],
)
case(
    "string_invalid_utf8",
    "SELECT arrayJoin([unhex('FF'), unhex('C0AF'), unhex('E282'), unhex('F4908080'), "
    "unhex('EDA080'), unhex('00FF00'), 'ok']) AS s",
    flags=["bytes"],
)
case(
    "string_varuint_length_boundaries",
    "SELECT length(s) AS len, s FROM (SELECT repeat('x', arrayJoin([0, 1, 127, 128, 255, 256, "
    "16383, 16384, 65535, 65536])) AS s)",
)
case(
    "fixedstring_padding",
    "SELECT toFixedString(arrayJoin(['', 'a', 'ab', 'abc', 'abcd']), 4) AS fs",
)
case(
    "fixedstring_n1",
    "SELECT toFixedString(char(number), 1) AS fs FROM numbers(256)",
    flags=["bytes"],
)
case(
    "fixedstring_n16_binary",
    "SELECT MD5(toString(number)) AS fs, toFixedString(unhex(lpad(hex(number), 32, '0')), 16) AS z "
    "FROM numbers(20)",
    flags=["bytes"],
)
case(
    "fixedstring_unicode",
    "SELECT toFixedString('é中', 8) AS fs, toFixedString('🦀', 4) AS crab",
)

# ---------------------------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------------------------
case(
    "date_range",
    "SELECT toDate(arrayJoin(['1970-01-01', '1970-01-02', '2000-02-29', '2024-12-31', '2149-06-06'])) AS d",
)
case(
    "date32_range",
    "SELECT toDate32(arrayJoin(['1900-01-01', '1901-12-13', '1969-12-31', '1970-01-01', "
    "'2000-02-29', '2149-06-07', '2299-12-31'])) AS d",
)
case(
    "datetime_utc",
    "SELECT toDateTime(arrayJoin([0, 1, 86399, 951782400, 1710052200, 2147483647, 4294967295])) AS t",
)
case(
    "datetime_explicit_utc",
    "SELECT toDateTime(arrayJoin([0, 1710052200, 4294967295]), 'UTC') AS t",
)
case(
    "datetime_asia_kolkata",
    "SELECT toDateTime(arrayJoin([0, 1710052200, 1735689599, 4294967295]), 'Asia/Kolkata') AS t",
    readback={"session_timezone": "Asia/Kolkata"},
)
case(
    "datetime_new_york_dst",
    # 2024-03-10 spring forward at 07:00 UTC, 2024-11-03 fall back at 06:00 UTC (hourly around both).
    "SELECT toDateTime(arrayJoin([1710050400, 1710054000, 1710057600, 1710061200, 1730607600, "
    "1730611200, 1730614800, 1730618400]), 'America/New_York') AS t",
    readback={"session_timezone": "America/New_York"},
)
case(
    "datetime_in_array_keeps_timezone",
    "SELECT [toDateTime(0, 'Asia/Kolkata'), toDateTime(1710052200, 'Asia/Kolkata')] AS a, "
    "tuple(toDateTime(0, 'America/New_York')) AS t",
)
case(
    "datetime64_p0",
    "SELECT toDateTime64(arrayJoin([-2208988800, -1, 0, 1710052200, 4102444800]), 0) AS t",
)
case(
    "datetime64_p3_utc",
    "SELECT toDateTime64(arrayJoin(['1900-01-01 00:00:00.001', '1969-12-31 23:59:59.999', "
    "'1970-01-01 00:00:00.000', '2024-03-10 06:30:00.123', '2299-12-31 23:59:59.999']), 3, 'UTC') AS t",
)
case(
    "datetime64_p6",
    "SELECT toDateTime64(arrayJoin(['1969-12-31 23:59:59.999999', '1970-01-01 00:00:00.000001', "
    "'2024-03-10 06:30:00.123456']), 6) AS t",
)
case(
    "datetime64_p9_moscow",
    "SELECT toDateTime64(arrayJoin(['1900-01-01 00:00:00.123456789', '1969-12-31 23:59:59.999999999', "
    "'1970-01-01 03:00:00.000000001', '2024-03-10 09:30:00.123456789', '2262-04-11 23:47:16.854775807']), "
    "9, 'Europe/Moscow') AS t",
)
case(
    "time_values",
    "SELECT toTime(arrayJoin(['00:00:00', '12:34:56', '23:59:59', '-12:00:00', '999:59:59', "
    "'-999:59:59'])) AS t",
)
case(
    "time64_p3_values",
    "SELECT toTime64(arrayJoin(['00:00:00.000', '12:34:56.789', '-01:02:03.456', '999:59:59.999']), 3) AS t",
)
case(
    "time64_p6_values",
    "SELECT toTime64(arrayJoin(['00:00:00.000001', '23:59:59.999999']), 6) AS t",
)

# ---------------------------------------------------------------------------------------------
# UUID / IP
# ---------------------------------------------------------------------------------------------
case(
    "uuid_values",
    "SELECT toUUID(arrayJoin(['00000000-0000-0000-0000-000000000000', "
    "'61f0c404-5cb3-11e7-907b-a6006ad3dba0', 'ffffffff-ffff-ffff-ffff-ffffffffffff', "
    "'01234567-89ab-cdef-0123-456789abcdef'])) AS u",
)
case(
    "uuid_from_md5",
    "SELECT reinterpretAsUUID(MD5(toString(number))) AS u FROM numbers(50)",
)
case(
    "ipv4_values",
    "SELECT toIPv4(arrayJoin(['0.0.0.0', '1.2.3.4', '127.0.0.1', '192.168.1.255', '255.255.255.255'])) AS ip",
)
case(
    "ipv6_values",
    "SELECT toIPv6(arrayJoin(['::', '::1', '2001:db8::ff00:42:8329', '::ffff:1.2.3.4', "
    "'fe80::1ff:fe23:4567:890a', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'])) AS ip",
)

# ---------------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------------
case(
    "enum8_escaped_names",
    "SELECT CAST(arrayJoin(['it''s', 'back\\\\slash', 'ü', 'a', 'min', 'max']) AS "
    "Enum8('it''s' = -1, 'back\\\\slash' = 2, 'ü' = 3, 'a' = 4, 'min' = -128, 'max' = 127)) AS e",
)
case(
    "enum16_values",
    "SELECT CAST(arrayJoin(['neg', 'zero', 'big', 'emoji 🦀', 'quote\"d', 'min', 'max']) AS "
    "Enum16('neg' = -1000, 'zero' = 0, 'big' = 30000, 'emoji 🦀' = 5, 'quote\"d' = 6, "
    "'min' = -32768, 'max' = 32767)) AS e",
)
case(
    "enum8_many_rows",
    "SELECT CAST(number % 3 + 1 AS Enum8('x' = 1, 'y' = 2, 'z' = 3)) AS e FROM numbers(30)",
)

# ---------------------------------------------------------------------------------------------
# Nullable and Nothing
# ---------------------------------------------------------------------------------------------
case("nullable_nothing", "SELECT NULL AS n")
case("nullable_nothing_rows", "SELECT NULL AS n FROM numbers(4)")
case("array_nothing_empty", "SELECT [] AS a FROM numbers(2)")
case(
    "nullable_mixed_types",
    "SELECT if(number % 3 = 0, NULL, number) AS u, if(number % 2 = 0, NULL, toString(number)) AS s, "
    "if(number % 4 = 1, NULL, toFloat64(number) / 2) AS f, "
    "if(number % 5 = 2, NULL, toDate('2024-01-01') + number) AS d, "
    "if(number = 3, NULL, toDecimal64(number, 3)) AS dec, "
    "if(number = 4, NULL, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0')) AS uuid, "
    "if(number = 5, NULL, toFixedString('ab', 3)) AS fs FROM numbers(10)",
)
case(
    "nullable_all_null",
    "SELECT CAST(NULL AS Nullable(Int32)) AS i, CAST(NULL AS Nullable(String)) AS s FROM numbers(5)",
)
case(
    "nullable_no_null",
    "SELECT toNullable(number) AS i, toNullable(toString(number)) AS s FROM numbers(5)",
)
case(
    "nullable_enum_ip",
    "SELECT if(number = 1, NULL, CAST(number % 2 + 1 AS Enum8('a' = 1, 'b' = 2))) AS e, "
    "if(number = 2, NULL, toIPv4(number)) AS ip4, if(number = 0, NULL, toIPv6('::1')) AS ip6 "
    "FROM numbers(4)",
)

# ---------------------------------------------------------------------------------------------
# Arrays, tuples, maps
# ---------------------------------------------------------------------------------------------
case("array_int", "SELECT range(number) AS a, arrayMap(x -> toInt16(x) - 2, range(number % 4)) AS b FROM numbers(6)")
case("array_string", "SELECT arrayMap(x -> repeat('s', x), range(number)) AS a FROM numbers(5)")
case("array_empty_only", "SELECT CAST([] AS Array(UInt32)) AS a, CAST([] AS Array(String)) AS s FROM numbers(3)")
case(
    "array_array_int",
    "SELECT [range(number), [], [toUInt64(7)]] AS a, CAST([] AS Array(Array(UInt8))) AS e FROM numbers(4)",
)
case(
    "array_array_array_string",
    "SELECT [[['a', 'b'], []], [], [['c']]] AS a",
)
case(
    "tuple_unnamed",
    "SELECT tuple(number, toString(number), toFloat32(number) / 2) AS t FROM numbers(3)",
)
case(
    "tuple_named",
    "SELECT CAST(tuple(number, concat('n', toString(number))) AS Tuple(a UInt8, b String)) AS t FROM numbers(3)",
)
case(
    "tuple_single_and_nested",
    "SELECT tuple(1) AS one, tuple(tuple(1, 'x'), [2, 3]) AS nested",
)
case(
    "tuple_empty",
    "SELECT tuple() AS t FROM numbers(3)",
)
case(
    "tuple_names_needing_quotes",
    "SELECT CAST(tuple(1, 'a') AS Tuple(`a b` UInt8, `c.d` String)) AS t",
)
case(
    "map_empty_nothing",
    "SELECT map() AS m, [NULL] AS an FROM numbers(2)",
)
case(
    "bool_nullable_and_array",
    "SELECT if(number = 1, NULL, number % 2 = 0) AS nb, arrayMap(i -> i % 2 = 1, range(number)) AS ab FROM numbers(4)",
)
case(
    "tuple_named_cast_literal",
    "SELECT tuple(1, 'a')::Tuple(a UInt8, b String) AS t",
)
case(
    "map_string_uint64",
    "SELECT CAST((arrayMap(x -> concat('k', toString(x)), range(number)), range(number)) "
    "AS Map(String, UInt64)) AS m FROM numbers(5)",
)
case(
    "map_lc_string_array_nullable_int32",
    "SELECT CAST(if(number = 0, map('a', [1, NULL, 3], 'b', [], 'c', [NULL]), map()) AS "
    "Map(LowCardinality(String), Array(Nullable(Int32)))) AS m FROM numbers(2)",
)
case(
    "map_int_keys_nullable_values",
    "SELECT map(number, if(number % 2 = 0, NULL, toString(number)), 1000 + number, 'x') AS m FROM numbers(4)",
)

# ---------------------------------------------------------------------------------------------
# LowCardinality
# ---------------------------------------------------------------------------------------------
case(
    "lc_string",
    "SELECT toLowCardinality(['red', 'green', 'blue', ''][number % 4 + 1]) AS c FROM numbers(12)",
)
case(
    "lc_nullable_string",
    "SELECT toLowCardinality(if(number % 3 = 0, NULL, toString(number % 5))) AS c FROM numbers(12)",
)
case(
    "lc_nullable_all_null",
    "SELECT CAST(NULL AS LowCardinality(Nullable(String))) AS c FROM numbers(3)",
)
case(
    "lc_fixedstring4",
    "SELECT toLowCardinality(toFixedString(['ab', 'abcd', ''][number % 3 + 1], 4)) AS c FROM numbers(7)",
)
case(
    "lc_numbers",
    "SELECT toLowCardinality(toUInt32(number % 4 * 1000)) AS u32, toLowCardinality(toInt64(number % 3) - 1) AS i64, "
    "toLowCardinality(toFloat64(number % 2) / 4) AS f, toLowCardinality(toDate('2024-01-01') + number % 2) AS d "
    "FROM numbers(8)",
)
case(
    "lc_dict_over_256",
    "SELECT toLowCardinality(concat('v', toString(number % 300))) AS c FROM numbers(600)",
)
case(
    "lc_dict_over_65536",
    "SELECT toLowCardinality(toString(number)) AS c FROM numbers(70000)",
    settings={"max_block_size": 100000},
)
case(
    "lc_multiblock",
    "SELECT toLowCardinality(concat('k', toString(number % 5))) AS c, "
    "toLowCardinality(if(number % 4 = 0, NULL, toString(number % 7))) AS n FROM numbers(25)",
    settings={"max_block_size": 7},
    flags=["multiblock"],
)
case(
    "lc_empty_strings_only",
    "SELECT toLowCardinality('') AS c FROM numbers(3)",
)

# ---------------------------------------------------------------------------------------------
# Nested
# ---------------------------------------------------------------------------------------------
case(
    "nested_flatten_off",
    "SELECT CAST(arrayMap(i -> (toUInt8(i), concat('y', toString(i))), range(number)) AS "
    "Nested(x UInt8, y String)) AS n FROM numbers(4)",
    settings={"flatten_nested": 0},
)
case(
    "array_of_named_tuples",
    "SELECT CAST(arrayMap(i -> (toUInt8(i), concat('y', toString(i))), range(number)) AS "
    "Array(Tuple(x UInt8, y String))) AS n FROM numbers(4)",
)

# ---------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------
case(
    "interval_all_units",
    "SELECT toIntervalNanosecond(number - 1) AS ns, toIntervalMicrosecond(2) AS us, "
    "toIntervalMillisecond(3) AS ms, toIntervalSecond(-4) AS s, toIntervalMinute(5) AS mi, "
    "toIntervalHour(6) AS h, toIntervalDay(5) AS d, toIntervalWeek(7) AS w, toIntervalMonth(8) AS mo, "
    "toIntervalQuarter(9) AS q, toIntervalYear(10) AS y FROM numbers(2)",
)

# ---------------------------------------------------------------------------------------------
# Variant
# ---------------------------------------------------------------------------------------------
case(
    "variant_mixed",
    "SELECT multiIf(number % 4 = 0, NULL, number % 4 = 1, toUInt64(number), number % 4 = 2, "
    "concat('s', toString(number)), [toUInt8(number), 1]) AS v FROM numbers(8)",
    settings={"use_variant_as_common_type": 1},
)
case(
    "variant_cast_single_type",
    "SELECT CAST(number AS Variant(String, UInt64)) AS v FROM numbers(3)",
)
case(
    "variant_all_null",
    "SELECT CAST(NULL AS Variant(String, UInt64)) AS v FROM numbers(3)",
)
case(
    "variant_many_types",
    "SELECT CAST(arrayJoin([CAST(toInt8(-1) AS Variant(Int8, String, Float64, Date, Array(String), Tuple(a UInt8, b String), Bool)), "
    "'text', 1.5::Float64, toDate('2024-02-29'), ['x', 'y'], (1, 'z')::Tuple(a UInt8, b String), true, NULL]) "
    "AS Variant(Int8, String, Float64, Date, Array(String), Tuple(a UInt8, b String), Bool)) AS v",
    settings={"allow_suspicious_variant_types": 1},
)
case(
    "variant_in_array",
    "SELECT [CAST(1::UInt64 AS Variant(UInt64, String)), CAST('a' AS Variant(UInt64, String)), NULL] AS a",
)

# ---------------------------------------------------------------------------------------------
# Dynamic
# ---------------------------------------------------------------------------------------------
_DYN_VALUES = (
    "[CAST(toInt64(1) AS Dynamic), CAST('str' AS Dynamic), CAST([toUInt8(1), 2] AS Dynamic), "
    "CAST(NULL AS Dynamic), CAST(toDate('2024-01-01') AS Dynamic), CAST(3.5 AS Dynamic), "
    "CAST(toInt64(-7) AS Dynamic), CAST(true AS Dynamic), CAST(map('k', 1) AS Dynamic), "
    "CAST(tuple(1, 'a') AS Dynamic)]"
)
case("dynamic_mixed", "SELECT arrayJoin(%s) AS d" % _DYN_VALUES)
case(
    "dynamic_max_types_2",
    "SELECT CAST(arrayJoin(%s) AS Dynamic(max_types=2)) AS d" % _DYN_VALUES,
)
case(
    "dynamic_max_types_0",
    "SELECT CAST(arrayJoin(%s) AS Dynamic(max_types=0)) AS d" % _DYN_VALUES,
)
case("dynamic_single_type", "SELECT CAST(number AS Dynamic) AS d FROM numbers(4)")
case("dynamic_all_null", "SELECT CAST(NULL AS Dynamic) AS d FROM numbers(3)")
case(
    "dynamic_flattened",
    "SELECT arrayJoin(%s) AS d" % _DYN_VALUES,
    settings={"output_format_native_use_flattened_dynamic_and_json_serialization": 1},
)
case(
    "dynamic_max_types_2_flattened",
    "SELECT CAST(arrayJoin(%s) AS Dynamic(max_types=2)) AS d" % _DYN_VALUES,
    settings={"output_format_native_use_flattened_dynamic_and_json_serialization": 1},
)
case(
    "dynamic_multiblock",
    "SELECT CAST(if(number % 3 = 0, toString(number), toUInt64(number)) AS Dynamic) AS d FROM numbers(10)",
    settings={"max_block_size": 4, "use_variant_as_common_type": 1},
    flags=["multiblock"],
)
case(
    "dynamic_in_array_and_tuple",
    "SELECT [CAST(1 AS Dynamic), CAST('x' AS Dynamic)] AS a, tuple(CAST(2.5 AS Dynamic), 'y') AS t",
)

# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------
_JSON_DOCS = (
    "['{\"a\":{\"b\":1,\"c\":\"x\"},\"n\":10}', '{\"a\":{\"b\":2},\"arr\":[1,2,3]}', '{}', "
    "'{\"s\":\"text\",\"f\":1.25,\"t\":true,\"nul\":null}', "
    "'{\"objs\":[{\"x\":1},{\"x\":2,\"y\":\"z\"}],\"a\":{\"b\":3,\"d\":{\"e\":[\"p\",\"q\"]}}}']"
)
case("json_nested_paths", "SELECT CAST(arrayJoin(%s) AS JSON) AS j" % _JSON_DOCS)
case(
    "json_typed_paths",
    "SELECT CAST(arrayJoin(%s) AS JSON(a.b UInt32, s String)) AS j" % _JSON_DOCS,
)
case(
    "json_max_dynamic_paths_1",
    "SELECT CAST(arrayJoin(%s) AS JSON(max_dynamic_paths=1)) AS j" % _JSON_DOCS,
)
case(
    "json_skip_path",
    "SELECT CAST(arrayJoin(%s) AS JSON(SKIP a.c, SKIP REGEXP '^o')) AS j" % _JSON_DOCS,
)
case("json_empty_objects", "SELECT CAST('{}' AS JSON) AS j FROM numbers(3)")
case(
    "json_arrays_of_objects",
    "SELECT CAST(concat('{\"items\":[{\"id\":', toString(number), ',\"tags\":[\"t', toString(number), "
    "'\"]}],\"matrix\":[[1,2],[3]]}') AS JSON) AS j FROM numbers(3)",
)
case(
    "json_flattened",
    "SELECT CAST(arrayJoin(%s) AS JSON) AS j" % _JSON_DOCS,
    settings={"output_format_native_use_flattened_dynamic_and_json_serialization": 1},
)
case(
    "json_typed_paths_flattened",
    "SELECT CAST(arrayJoin(%s) AS JSON(a.b UInt32, s String)) AS j" % _JSON_DOCS,
    settings={"output_format_native_use_flattened_dynamic_and_json_serialization": 1},
)
case(
    "json_max_dynamic_paths_1_flattened",
    "SELECT CAST(arrayJoin(%s) AS JSON(max_dynamic_paths=1)) AS j" % _JSON_DOCS,
    settings={"output_format_native_use_flattened_dynamic_and_json_serialization": 1},
)
case(
    "json_as_string",
    "SELECT CAST(arrayJoin(%s) AS JSON) AS j" % _JSON_DOCS,
    settings={"output_format_native_write_json_as_string": 1},
)
case(
    "json_typed_paths_as_string",
    "SELECT CAST(arrayJoin(%s) AS JSON(a.b UInt32, s String)) AS j" % _JSON_DOCS,
    settings={"output_format_native_write_json_as_string": 1},
)
case(
    "json_multiblock",
    "SELECT CAST(concat('{\"id\":', toString(number), if(number % 2 = 0, ',\"even\":true', ',\"odd\":\"yes\"'), '}') "
    "AS JSON) AS j FROM numbers(9)",
    settings={"max_block_size": 4},
    flags=["multiblock"],
)

# ---------------------------------------------------------------------------------------------
# SimpleAggregateFunction and geo
# ---------------------------------------------------------------------------------------------
case(
    "simple_aggregate_function_sum",
    "SELECT CAST(number * 1000 AS SimpleAggregateFunction(sum, UInt64)) AS s FROM numbers(4)",
)
case(
    "simple_aggregate_function_any_string",
    "SELECT CAST(toString(number) AS SimpleAggregateFunction(any, String)) AS s, "
    "CAST(toNullable(number) AS SimpleAggregateFunction(max, Nullable(UInt32))) AS m FROM numbers(3)",
)
case("geo_point", "SELECT CAST((toFloat64(number) / 2, -1.5 * number) AS Point) AS p FROM numbers(3)")
case("geo_ring", "SELECT CAST([(0, 0), (1, 0), (1, 1), (0, 0)] AS Ring) AS r, CAST([] AS Ring) AS e")
case("geo_linestring", "SELECT CAST([(0, 0), (1.5, 2.5)] AS LineString) AS l")
case(
    "geo_multilinestring",
    "SELECT CAST([[(0, 0), (1, 0)], [], [(2, 2)]] AS MultiLineString) AS m",
)
case(
    "geo_polygon",
    "SELECT CAST([[(0, 0), (10, 0), (10, 10), (0, 10)], [(2, 2), (3, 2), (3, 3)]] AS Polygon) AS p",
)
case(
    "geo_multipolygon",
    "SELECT CAST([[[(0, 0), (1, 0), (1, 1)]], [[(5, 5), (6, 5), (6, 6)], [(5.5, 5.5)]]] AS MultiPolygon) AS mp",
)
case(
    "geo_all_types_rows",
    "SELECT CAST((number, number + 1) AS Point) AS p, "
    "CAST(arrayMap(i -> (i, i), range(number)) AS Ring) AS r, "
    "CAST(arrayMap(i -> (i, -i), range(number)) AS LineString) AS l, "
    "CAST([arrayMap(i -> (i, 0), range(number))] AS MultiLineString) AS ml, "
    "CAST([arrayMap(i -> (0, i), range(number))] AS Polygon) AS pg, "
    "CAST([[arrayMap(i -> (i, i * 2), range(number))]] AS MultiPolygon) AS mpg FROM numbers(3)",
)

# ---------------------------------------------------------------------------------------------
# Deep nesting
# ---------------------------------------------------------------------------------------------
case(
    "nest_array_nullable_string",
    "SELECT arrayMap(i -> if(i % 2 = 1, NULL, repeat('z', i)), range(number)) AS a FROM numbers(5)",
)
case(
    "nest_array_array_nullable_int32",
    "SELECT [arrayMap(i -> if(i = 1, NULL, toInt32(i) - 1), range(number)), [], [NULL]] AS a FROM numbers(4)",
)
case(
    "nest_array_tuple_uint8_array_string",
    "SELECT arrayMap(i -> (toUInt8(i), arrayMap(j -> toString(j), range(i))), range(number)) AS a FROM numbers(4)",
)
case(
    "nest_tuple_nullable_string_array_lc",
    "SELECT tuple(if(number = 1, NULL, toString(number)), "
    "CAST(arrayMap(i -> toString(i % 2), range(number)) AS Array(LowCardinality(String)))) AS t FROM numbers(4)",
)
case(
    "nest_tuple_with_nullables",
    "SELECT CAST((if(number % 2 = 0, NULL, number), if(number = 2, NULL, 'v'), number) AS "
    "Tuple(a Nullable(UInt64), b Nullable(String), c UInt32)) AS t FROM numbers(4)",
)
case(
    "nest_array_lc_nullable_string",
    "SELECT CAST(arrayMap(i -> if(i % 3 = 2, NULL, concat('c', toString(i % 2))), range(number)) AS "
    "Array(LowCardinality(Nullable(String)))) AS a FROM numbers(5)",
)
case(
    "nest_array_map_string_array_uint8",
    "SELECT [CAST(map('a', range(number), 'b', []) AS Map(String, Array(UInt8))), "
    "CAST(map() AS Map(String, Array(UInt8)))] AS a FROM numbers(3)",
)
case(
    "nest_map_lc_array_nullable_rows",
    "SELECT CAST(map(concat('k', toString(number % 2)), arrayMap(i -> if(i = 0, NULL, toInt32(i)), range(number))) "
    "AS Map(LowCardinality(String), Array(Nullable(Int32)))) AS m FROM numbers(4)",
)
case(
    "nest_array_array_array_nullable_uint8",
    "SELECT [[[toNullable(toUInt8(number)), NULL], []], [[]]] AS a FROM numbers(2)",
)
case(
    "nest_map_of_tuples_and_arrays_of_maps",
    "SELECT map('x', tuple(number, [toString(number)])) AS m, [map(toString(number), number)] AS am FROM numbers(3)",
)
case(
    "nest_lc_in_tuple_in_array",
    "SELECT [tuple(toLowCardinality(toString(number)), toNullable(number))] AS a FROM numbers(3)",
)

# ---------------------------------------------------------------------------------------------
# Empty results
# ---------------------------------------------------------------------------------------------
case("empty_where_0_uint64", "SELECT number FROM numbers(10) WHERE 0", flags=["empty"])
case("empty_limit_0_string", "SELECT toString(number) AS s FROM numbers(10) LIMIT 0", flags=["empty"])
case(
    "empty_complex_types",
    "SELECT [number] AS a, map('k', number) AS m, toLowCardinality(toString(number)) AS lc, "
    "CAST(number AS Dynamic) AS d, toNullable(number) AS n FROM numbers(10) WHERE number > 100",
    flags=["empty"],
)
case("empty_where_0_json", "SELECT CAST('{\"a\":1}' AS JSON) AS j WHERE 0", flags=["empty"])

# ---------------------------------------------------------------------------------------------
# Multi-block outputs
# ---------------------------------------------------------------------------------------------
case(
    "multiblock_uint64",
    "SELECT number FROM numbers(10)",
    settings={"max_block_size": 3},
    flags=["multiblock"],
)
case(
    "multiblock_strings_nullable",
    "SELECT toString(number) AS s, if(number % 3 = 0, NULL, number * 10) AS n FROM numbers(11)",
    settings={"max_block_size": 4},
    flags=["multiblock"],
)
case(
    "multiblock_arrays_maps",
    "SELECT range(number % 4) AS a, map('k', toString(number)) AS m, tuple(number, 'x') AS t FROM numbers(9)",
    settings={"max_block_size": 2},
    flags=["multiblock"],
)
case(
    "multiblock_variant",
    "SELECT multiIf(number % 3 = 0, NULL, number % 3 = 1, toUInt64(number), toString(number)) AS v FROM numbers(8)",
    settings={"max_block_size": 3, "use_variant_as_common_type": 1},
    flags=["multiblock"],
)
case(
    "multiblock_one_row_blocks",
    "SELECT number, toDateTime64(number, 3, 'UTC') AS t FROM numbers(4)",
    settings={"max_block_size": 1},
    flags=["multiblock"],
)
case(
    "multiblock_default_block_size",
    "SELECT toUInt32(number) AS n FROM numbers(70000)",
    flags=["multiblock"],
)

# ---------------------------------------------------------------------------------------------
# Mixed / realistic
# ---------------------------------------------------------------------------------------------
EVENT_SQL = """
SELECT
    reinterpretAsUUID(MD5(toString(number))) AS id,
    concat('conv-', toString(intDiv(number, 10))) AS conversation_id,
    toLowCardinality(['message', 'tool_call', 'tool_result', 'error', 'retry'][number % 5 + 1]) AS event_name,
    concat('input text ', toString(number), ' ', repeat('.', number % 17)) AS input,
    concat('réponse ✓ ', toString(cityHash64(number) % 100000)) AS output,
    toFloat64(cityHash64(number) % 100000) / 1000 AS latency,
    if(number % 7 = 0, concat('timeout after ', toString(number % 30), 's'), NULL) AS error,
    toDateTime64(1700000000, 3, 'UTC') + toIntervalMillisecond(number * 1234) AS timestamp,
    toUInt64(number * 3 + 1) AS version,
    toUInt8(number % 13 = 0) AS is_deleted
FROM numbers(1000)
"""
case("event_schema_1000", EVENT_SQL)
case("event_schema_multiblock", EVENT_SQL.replace("1000", "300"), settings={"max_block_size": 128},
     flags=["multiblock"])
case(
    "wide_row_many_types",
    "SELECT toInt8(-8) AS i8, toUInt64(64) AS u64, toFloat32(0.5) AS f32, 'str' AS s, toFixedString('fx', 2) AS fs, "
    "toDate('2024-05-06') AS d, toDate32('1960-01-01') AS d32, toDateTime(1700000000) AS dt, "
    "toDateTime64(1700000000.5, 1) AS dt64, toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS u, "
    "toIPv4('10.0.0.1') AS ip4, toIPv6('::1') AS ip6, true AS b, toDecimal32(1.25, 2) AS dec, "
    "CAST('b' AS Enum8('a' = 1, 'b' = 2)) AS e, [1, 2] AS arr, map('k', 'v') AS m, tuple(1, 'a') AS t, "
    "toNullable(1) AS n, toLowCardinality('lc') AS lc, toIntervalDay(5) AS iv, toBFloat16(2.5) AS bf",
)
case(
    "column_names_unusual",
    "SELECT 1 AS `with space`, 2 AS `ünïcode`, 3 AS `dot.ted`, 4 AS `back``tick`, 5 AS `emoji 🦀`",
)
case(
    "many_rows_numeric_10000",
    "SELECT number AS n, toInt16(number % 65536 - 32768) AS i16, toFloat64(number) / 3 AS f FROM numbers(10000)",
)

# ---------------------------------------------------------------------------------------------
# Large cases (1M rows): .native.zst + .summary.json
# ---------------------------------------------------------------------------------------------
case("large_uint64_1m", "SELECT number * 3 AS v FROM numbers(1000000)", flags=["large"])
case(
    "large_string_1m",
    "SELECT concat('event-', toString(number), '-', "
    "substring('lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt', "
    "1, 10 + number % 61)) AS s FROM numbers(1000000)",
    flags=["large"],
)
case(
    "large_lc_string_1m",
    "SELECT toLowCardinality(concat('category_', toString(number % 1000))) AS c FROM numbers(1000000)",
    flags=["large"],
)
case(
    "large_nullable_float64_1m",
    "SELECT if(number % 10 = 3, NULL, toFloat64(number % 100000) / 4) AS f FROM numbers(1000000)",
    flags=["large"],
)


# =============================================================================================
# Machinery
# =============================================================================================


def sql_value(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def effective_settings(c):
    s = dict(BASE_SETTINGS)
    s.update(c["settings"])
    return s


def with_settings(sql, settings):
    if not settings:
        return sql
    return sql + " SETTINGS " + ", ".join("%s=%s" % (k, sql_value(v)) for k, v in sorted(settings.items()))


def run(sql, fmt):
    return chdb.query(sql, fmt).bytes()


def read_back_settings(c):
    s = dict(READBACK_BASE_SETTINGS)
    s.update(c["readback"])
    return s


def describe(c):
    rows = run(with_settings("DESCRIBE (%s)" % c["sql"], effective_settings(c)), "JSONEachRow")
    return [{"name": r["name"], "type": r["type"]} for r in map(json.loads, rows.splitlines())]


def file_stats(path, c):
    """Row and block count and the Native header types, read back from the written file by chdb."""
    if path.stat().st_size == 0:
        return 0, 0, None
    src = "file('%s', Native)" % str(path).replace("'", "\\'")
    s = read_back_settings(c)
    out = json.loads(run(with_settings("SELECT count() AS r, uniqExact(blockNumber()) AS b FROM %s" % src, s),
                         "JSONEachRow"))
    header = [
        json.loads(line)["type"]
        for line in run(with_settings("DESCRIBE %s" % src, s), "JSONEachRow").splitlines()
    ]
    return int(out["r"]), int(out["b"]), header


def top_level_string_columns(columns):
    out = []
    for col in columns:
        t = col["type"]
        base = t
        for wrapper in ("LowCardinality(", "Nullable("):
            if base.startswith(wrapper):
                base = base[len(wrapper):-1]
        if base == "String" or base.startswith("FixedString("):
            out.append(col["name"])
    return out


def quote_ident(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def summary_for(path, c, columns):
    src = "file('%s', Native)" % str(path).replace("'", "\\'")
    s = read_back_settings(c)
    rows = int(json.loads(run(with_settings("SELECT count() AS r FROM %s" % src, s), "JSONEachRow"))["r"])
    out = {"rows": rows, "columns": {}}
    for col in columns:
        name, t = col["name"], col["type"]
        q = quote_ident(name)
        is_string = "String" in t
        if is_string:
            agg = "min(%s) AS min, max(%s) AS max, sum(length(%s)) AS total_length" % (q, q, q)
        else:
            agg = "min(%s) AS min, max(%s) AS max, sum(%s) AS sum" % (q, q, q)
        agg += ", countIf(isNull(%s)) AS null_count" % q
        st = json.loads(run(with_settings("SELECT %s FROM %s" % (agg, src), s), "JSONEachRow"))
        first = [json.loads(l)[name] for l in run(with_settings(
            "SELECT %s FROM %s LIMIT 3" % (q, src), s), "JSONEachRow").splitlines()]
        last = [json.loads(l)[name] for l in run(with_settings(
            "SELECT %s FROM %s LIMIT 3 OFFSET %d" % (q, src, max(rows - 3, 0)), s), "JSONEachRow").splitlines()]
        st["first"] = first
        st["last"] = last
        st["type"] = t
        out["columns"][name] = st
    return out


def dump_json(obj):
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def zstd_compress(data):
    return subprocess.run(
        ["zstd", "-%d" % ZSTD_LEVEL, "-q", "-c", "--no-progress"], input=data, stdout=subprocess.PIPE, check=True
    ).stdout


def zstd_decompress(data):
    return subprocess.run(["zstd", "-d", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


def generate(out_dir, only=None, compress=True, verbose=True):
    """Write every case into out_dir. With compress=False the .native.zst files hold raw Native bytes
    (used by --check, which compares decompressed content)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    readback = {}
    scratch = Path(tempfile.mkdtemp(prefix="native-fixtures-"))
    try:
        for c in CASES:
            if only and c["name"] not in only:
                continue
            name = c["name"]
            settings = effective_settings(c)
            sql = with_settings(c["sql"], settings)
            native = run(sql, "Native")
            columns = describe(c)
            tmp = scratch / (name + ".native")
            tmp.write_bytes(native)
            rows, blocks, header = file_stats(tmp, c)
            if header is not None:
                assert len(header) == len(columns), name
                for col, ht in zip(columns, header):
                    col["native_type"] = ht
            files = []
            if "large" in c["flags"]:
                data = zstd_compress(native) if compress else native
                (out_dir / (name + ".native.zst")).write_bytes(data)
                (out_dir / (name + ".summary.json")).write_bytes(dump_json(summary_for(tmp, c, columns)))
                files += [name + ".native.zst", name + ".summary.json"]
            else:
                jsonl = run(sql, "JSONEachRow")
                if jsonl.count(b"\n") != rows:
                    raise SystemExit("%s: JSON has %d lines, Native has %d rows" % (name, jsonl.count(b"\n"), rows))
                (out_dir / (name + ".native")).write_bytes(native)
                (out_dir / (name + ".jsonl")).write_bytes(jsonl)
                files += [name + ".native", name + ".jsonl"]
                if "bytes" in c["flags"]:
                    hex_cols = set(top_level_string_columns(columns))
                    proj = ", ".join(
                        ("hex(%s) AS %s" % (quote_ident(col["name"]), quote_ident(col["name"])))
                        if col["name"] in hex_cols else quote_ident(col["name"])
                        for col in columns
                    )
                    hex_sql = with_settings("SELECT %s FROM (%s)" % (proj, c["sql"]), settings)
                    (out_dir / (name + ".hex.jsonl")).write_bytes(run(hex_sql, "JSONEachRow"))
                    files.append(name + ".hex.jsonl")
            if c["readback"]:
                readback[name] = c["readback"]
            for f in files:
                size = (out_dir / f).stat().st_size
                if compress and size > MAX_FILE_BYTES:
                    raise SystemExit("%s is %d bytes (limit %d)" % (f, size, MAX_FILE_BYTES))
            manifest.append(
                {
                    "name": name,
                    "sql": c["sql"],
                    "settings": settings,
                    "readback_settings": read_back_settings(c),
                    "rows": rows,
                    "blocks": blocks,
                    "columns": columns,
                    "files": files,
                    "flags": c["flags"],
                }
            )
            if verbose:
                print("%-45s rows=%-8d blocks=%-3d %s" % (name, rows, blocks, " ".join(files)), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not only:
        (out_dir / "manifest.json").write_bytes(dump_json(manifest))
        (out_dir / "readback_settings.json").write_bytes(dump_json(readback))
    return manifest


def same_content(generated, committed):
    a = generated.read_bytes()
    b = committed.read_bytes()
    if committed.name.endswith(".zst"):
        try:
            b = zstd_decompress(b)
        except subprocess.CalledProcessError:
            return False
    return a == b


def check():
    tmp = Path(tempfile.mkdtemp(prefix="native-fixtures-check-"))
    try:
        generate(tmp, compress=False, verbose=False)
        new = {p.name for p in tmp.iterdir()}
        old = {p.name for p in NATIVE_DIR.iterdir()} if NATIVE_DIR.is_dir() else set()
        problems = []
        problems += ["missing (not committed): " + n for n in sorted(new - old)]
        problems += ["extra (no longer generated): " + n for n in sorted(old - new)]
        problems += ["differs: " + n for n in sorted(new & old) if not same_content(tmp / n, NATIVE_DIR / n)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("Fixtures/native is out of date (%d problem(s)):" % len(problems))
        for p in problems:
            print("  " + p)
        return 1
    print("Fixtures/native is up to date (%d files, %d cases)." % (len(new), len(CASES)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate into a temp dir and compare with Fixtures/native")
    ap.add_argument("--only", action="append", help="generate only this case (repeatable; needs --out)")
    ap.add_argument("--out", type=Path, help="output directory (default Fixtures/native)")
    args = ap.parse_args()
    if args.check:
        if args.only or args.out:
            ap.error("--check regenerates every case into a temporary directory: it takes no --only or --out")
        return check()
    if args.only and not args.out:
        ap.error("--only needs --out (the manifest would be incomplete)")
    out = args.out or NATIVE_DIR
    if out == NATIVE_DIR:
        # Build next to the real directory and swap at the end, so a failure leaves it untouched.
        staging = Path(tempfile.mkdtemp(prefix=".native-new-", dir=HERE))
        staging.chmod(0o755)
        try:
            n_cases = len(generate(staging))
            if NATIVE_DIR.is_dir():
                shutil.rmtree(NATIVE_DIR)
            staging.rename(NATIVE_DIR)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        n_cases = len(generate(out, only=set(args.only or ())))
    total = sum(p.stat().st_size for p in out.iterdir())
    print("%d cases, %d files, %d bytes in %s" % (n_cases, len(list(out.iterdir())), total, out))
    if total > MAX_TOTAL_BYTES:
        print("total size exceeds %d bytes" % MAX_TOTAL_BYTES)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
