SELECT 1 AS x, 'ab' AS s
SELECT number, toString(number) AS s FROM system.numbers LIMIT 100000
SELECT toInt8(-128) a, toInt16(-32768) b, toInt32(-2147483648) c, toInt64(-9223372036854775808) d, toUInt8(255) e, toUInt16(65535) f, toUInt32(4294967295) g, toUInt64(18446744073709551615) h
SELECT toFloat64(number) / 7 AS f, toFloat32(number) / 3 AS g FROM system.numbers LIMIT 1000
SELECT 1e-7 a, 1e-6 b, 1e-5 c, 1e20 d, 1e21 e, 0.1 f, nan g, inf h, -inf i, -0. j, 1/3 k, 123456.789 l, 1e15 m, 1e16 n, 1.7976931348623157e308 p
SELECT toFloat32(0.1) a, toFloat32(1e-7) b, toFloat32(3.4028235e38) c, toFloat32(16777217) d
SELECT 'a\tb\nc\\d''e' AS s, '' AS empty, 'привет' AS u, '\0x\b\f\r' AS ctl
SELECT toFixedString('ab', 4) AS f, toFixedString('', 2) AS g
SELECT toDate('2024-03-15') a, toDate('1970-01-01') b, toDate('2105-12-31') c
SELECT toDateTime('2024-03-15 14:30:00') a, toDateTime(0) b, toDateTime('2024-03-10 12:00:00', 'America/New_York') c, toDateTime(1710052200, 'Asia/Kolkata') d
SELECT toDecimal32(1.5, 2) a, toDecimal64(-1.50, 3) b, toDecimal128(123.456, 10) c, toDecimal32(0, 4) d, toDecimal64(-0.001, 3) e
SELECT toUUID('550e8400-e29b-41d4-a716-446655440000') a, toUUID('00000000-0000-0000-0000-000000000000') b
SELECT CAST('b' AS Enum8('a' = 1, 'b' = -2)) a, CAST('it''s' AS Enum16('it''s' = 300, 'x' = 1)) b
SELECT [1, 2, 3] a, [] b, ['x''y', 'z\t'] c, [[1], [2, 3]] d, [NULL, 1] e, [toDate('2024-01-01')] f
SELECT (1, 'q') a, (1, [2], ('x', NULL)) b
SELECT NULL a, toNullable(1) b, CAST(NULL AS Nullable(String)) c, [CAST(NULL AS Nullable(String)), 'a'] d
SELECT toLowCardinality('abc') a, toLowCardinality(toNullable('x')) b
SELECT number % 3 AS k, count() c, sum(number) s, avg(number) a FROM numbers(100000) GROUP BY k ORDER BY k
SELECT number, number * 2 FROM system.numbers LIMIT 10 SETTINGS max_block_size = 3
SELECT arrayJoin([1, 2, 3]) AS x, 'const' AS c
SELECT toIntervalSecond(5) a, toIntervalDay(2) b
SELECT groupArray(number) FROM (SELECT number FROM system.numbers LIMIT 20)
SELECT name, type FROM system.columns WHERE database = 'system' AND table = 'one'
SELECT 'ü\\\'' AS s, '\\N' AS n, '\\' AS b
SELECT number FROM system.numbers LIMIT 0
SELECT sum(number) FROM numbers(1000)
SELECT toDateTime('2024-03-15 14:30:00', 'UTC') AS a, [toDateTime('2024-03-15 14:30:00', 'Asia/Kolkata')] AS b
SELECT -1.5 AS neg, 100 AS hundred, 1000000 AS million, 0.5 AS half, 2.5e-10 AS small
SELECT toUInt64(number) * 1000000007 AS big FROM system.numbers LIMIT 5
SELECT intDiv(number, 3) AS q, number % 3 AS r FROM system.numbers LIMIT 10
SELECT MD5('a') AS h, unhex('FF80') AS b, [unhex('FF'), 'ok'] AS a, toFixedString(unhex('00FE'), 2) AS f
SELECT unhex('7F') AS del, unhex('E280A8') AS ls, concat('x', unhex('E280A9'), 'y') AS ps, unhex('E280') AS cut, 'a/b"c\\d' AS q
SELECT unhex('011F1B') AS controls, 1 AS format ORDER BY format DESC
