-- embedding_io: text and binary input/output of the embedding type, typmods, and every input error.

-- error_of(sql): runs one statement and returns its SQLSTATE, message and
-- detail (or 'ok'), so that each error and its code shows in one row.
CREATE FUNCTION pg_temp.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	message text;
	detail text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || message || coalesce(' | ' || nullif(detail, ''), '');
END $$;

-- Text form, white space tolerated around brackets, elements and commas.
SELECT '[1,2.5,-0.03]'::embedding;
SELECT '  [ 1 ,	2.5,-0.03 ]  '::embedding;
SELECT E'[\n1,\n2\n]'::embedding;
SELECT '[1e-3, -1E+3, +4, .5, 5., 0, -0]'::embedding;
SELECT '[3.4028235e38,-3.4028235e38,1.4e-45,1.17549435e-38]'::embedding;
SELECT '[0.1,0.2,0.30000001,1234567.8,1e20,1e-20]'::embedding;

-- Output is the shortest text that reads back to the same float4: the same
-- digits as real's own output, element by element, for many values across the
-- whole range (powers of ten, thirds, subnormals, the extremes).
WITH v(x) AS (
	SELECT (s * m * 10.0 ^ e)::real
	FROM generate_series(-45, 38) e, (VALUES (1.0), (1.0 / 3), (2.0 / 3), (1.2345678), (9.9999999)) f(m),
		 (VALUES (1), (-1)) sg(s)
	WHERE abs(m * 10.0 ^ e) BETWEEN 1.4e-45 AND 3.4e38
), e AS (
	SELECT array_agg(x ORDER BY x) AS xs FROM v
)
SELECT cardinality(xs) AS elements,
	   xs::embedding::text = '[' || array_to_string(xs, ',') || ']' AS same_digits_as_real,
	   xs::embedding::text::embedding = xs::embedding AS round_trips,
	   xs::embedding::text::embedding::real[] = xs AS bit_identical
FROM e;

-- Every error of text input, with its SQLSTATE.
SELECT input, pg_temp.error_of(format('SELECT %L::embedding', input))
FROM (VALUES
	(''),
	('1,2,3'),
	('[]'),
	('[ ]'),
	('[1,2,3'),
	('[1,2,3]x'),
	('[1,2,3] ]'),
	('[1,,2]'),
	('[1,2,]'),
	('[,1]'),
	('[1 2]'),
	('[1;2]'),
	('[a]'),
	('[1,abc,3]'),
	('[1,2.5.3]'),
	('[1,NaN]'),
	('[nan]'),
	('[1,Infinity]'),
	('[-inf,1]'),
	('[1,1e39]'),
	('[-1e39]'),
	('[1e-46]'),
	('[1,2,3e400]')
) t(input);

-- Dimension limits: 16000 is the most.
SELECT dims(('[' || array_to_string(array_fill(1, ARRAY[16000]), ',') || ']')::embedding);
SELECT pg_temp.error_of(format('SELECT %L::embedding',
	'[' || array_to_string(array_fill(1, ARRAY[16001]), ',') || ']'));

-- Typmods.
SELECT '[1,2,3]'::embedding(3);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding(3)$$);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding::embedding(3)$$);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding(0)$$);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding(-5)$$);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding(16001)$$);
SELECT pg_temp.error_of($$SELECT '[1,2]'::embedding(2, 3)$$);
SELECT dims(array_fill(0.5::real, ARRAY[16000])::embedding(16000));

CREATE TABLE embedding_io_t (id int PRIMARY KEY, e embedding(3));
\d embedding_io_t
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'embedding_io_t'::regclass AND attname = 'e';
INSERT INTO embedding_io_t VALUES (1, '[1,2,3]'), (2, '[-0.5, 0.25, 1e-7]'), (3, NULL);
INSERT INTO embedding_io_t VALUES (4, '[1,2]');
INSERT INTO embedding_io_t VALUES (4, '[1,2]'::embedding);
INSERT INTO embedding_io_t VALUES (4, ARRAY[1,2,3,4]);
UPDATE embedding_io_t SET e = '[1,2,3,4]'::embedding WHERE id = 1;
SELECT * FROM embedding_io_t ORDER BY id;

-- Binary COPY round trip (send, then recv), through a file in the data directory.
CREATE TABLE embedding_io_copy (LIKE embedding_io_t);
DO $$ BEGIN
	EXECUTE format('COPY embedding_io_t TO %L (FORMAT binary)',
				   current_setting('data_directory') || '/embedding_io.bin');
	EXECUTE format('COPY embedding_io_copy FROM %L (FORMAT binary)',
				   current_setting('data_directory') || '/embedding_io.bin');
END $$;
SELECT a.id, a.e, a.e = b.e AS equal, a.e::real[] = b.e::real[] AS bit_identical
FROM embedding_io_t a JOIN embedding_io_copy b USING (id) ORDER BY id;
SELECT embedding_send('[1,-2,0.5]');

-- Malformed binary input: a COPY BINARY file with one embedding field whose
-- payload (hex) is given; written with lo_export, read back with COPY.
CREATE TABLE embedding_io_bin (e embedding);
CREATE TABLE embedding_io_bin3 (e embedding(3));
CREATE FUNCTION pg_temp.copy_binary(payload_hex text, target text DEFAULT 'embedding_io_bin')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	payload bytea := decode(payload_hex, 'hex');
	file bytea := '\x5047434f50590aff0d0a00'::bytea	-- PGCOPY\n\377\r\n\0
		|| '\x0000000000000000'::bytea				-- flags, header extension length
		|| '\x0001'::bytea							-- one field
		|| int4send(length(payload)) || payload
		|| '\xffff'::bytea;							-- trailer
	path text := current_setting('data_directory') || '/embedding_io_bad.bin';
	lo oid := lo_from_bytea(0, file);
BEGIN
	PERFORM lo_export(lo, path);
	PERFORM lo_unlink(lo);
	RETURN pg_temp.error_of(format('COPY %I FROM %L (FORMAT binary)', target, path));
END $$;
SELECT what, pg_temp.copy_binary(payload) FROM (VALUES
	('valid [1,-2]', '00020000' || '3f800000' || 'c0000000'),
	('0 dimensions', '00000000'),
	('-1 dimensions', 'ffff0000'),
	('16001 dimensions', '3e810000'),
	('reserved field set', '00010001' || '3f800000'),
	('truncated elements', '00020000' || '3f800000'),
	('truncated header', '0002'),
	('extra bytes', '00010000' || '3f800000' || '00'),
	('NaN element', '00020000' || '3f800000' || '7fc00000'),
	('+Infinity element', '00010000' || '7f800000'),
	('-Infinity element', '00010000' || 'ff800000')
) t(what, payload);
SELECT pg_temp.copy_binary('00020000' || '3f800000' || 'c0000000', 'embedding_io_bin3');
SELECT pg_temp.copy_binary('00030000' || '3f800000' || 'c0000000' || '00000000', 'embedding_io_bin3');
SELECT * FROM embedding_io_bin;
SELECT * FROM embedding_io_bin3;

DROP TABLE embedding_io_t, embedding_io_copy, embedding_io_bin, embedding_io_bin3;
