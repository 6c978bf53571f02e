-- embedding_cast: casts between embedding and real[], double precision[], integer[], numeric[], and their errors.

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

-- The casts and their contexts (e = explicit, a = assignment, i = implicit).
SELECT castsource::regtype, casttarget::regtype, castfunc::regprocedure, castcontext
FROM pg_cast
WHERE castsource = 'embedding'::regtype OR casttarget = 'embedding'::regtype
ORDER BY castsource::regtype::text, casttarget::regtype::text;

-- From arrays.
SELECT ARRAY[1,2,3]::embedding;
SELECT ARRAY[1.5,-2.25,3e-3]::real[]::embedding;
SELECT ARRAY[1.5,-2.25,3e-3]::double precision[]::embedding;
SELECT ARRAY[1.5,-2.25,3e-3]::numeric[]::embedding;
SELECT '{1,2,3}'::real[]::embedding(3);
SELECT ARRAY[0.1]::double precision[]::embedding;	-- rounds to the nearest float4
SELECT ARRAY[16777217]::embedding;					-- likewise
SELECT ('{1,2}'::real[])[1:1]::embedding;			-- a slice
SELECT '[2:3]={7,8}'::integer[]::embedding;			-- lower bound other than 1

-- Assignment: arrays go straight into an embedding column.
CREATE TABLE embedding_cast_t (e embedding(2));
INSERT INTO embedding_cast_t VALUES (ARRAY[1,2]), ('{3.5,4}'::real[]), (ARRAY[5,6]::float8[]), (ARRAY[7.25,8]);
SELECT e FROM embedding_cast_t;

-- To arrays.
SELECT '[1,2.5,-0.03]'::embedding::real[];
SELECT '[1,2.5,-0.03]'::embedding::double precision[];
SELECT '[1,2.5,-0.03,1.2345678,1e-45]'::embedding::numeric[];
SELECT '[1,2.5,-0.5,-1.5,2147483500]'::embedding::integer[];
-- real[], double precision[] and numeric[] round-trip exactly.
WITH e(v) AS (SELECT '[0.1,1.2345678,-3.4028235e38,1e-45,16777216,-0]'::embedding)
SELECT v::real[]::embedding::real[] = v::real[] AS via_real,
	   v::double precision[]::embedding::real[] = v::real[] AS via_double,
	   v::numeric[]::embedding::real[] = v::real[] AS via_numeric
FROM e;
-- Assignment to an array column.
CREATE TABLE embedding_cast_arrays (r real[], d double precision[], n numeric[]);
INSERT INTO embedding_cast_arrays SELECT e, e, e FROM embedding_cast_t;
SELECT * FROM embedding_cast_arrays;
-- integer[] rounds, so it is explicit only.
CREATE TABLE embedding_cast_integers (i integer[]);
INSERT INTO embedding_cast_integers SELECT e FROM embedding_cast_t;
INSERT INTO embedding_cast_integers SELECT e::integer[] FROM embedding_cast_t;
SELECT * FROM embedding_cast_integers;

-- Every cast error with its SQLSTATE.
SELECT what, pg_temp.error_of(statement) FROM (VALUES
	('empty array', $$SELECT '{}'::real[]::embedding$$),
	('NULL element', $$SELECT ARRAY[1,NULL,3]::embedding$$),
	('NULL element, real', $$SELECT ARRAY[NULL,1]::real[]::embedding$$),
	('two-dimensional', $$SELECT '{{1,2},{3,4}}'::real[]::embedding$$),
	('three-dimensional', $$SELECT '{{{1}}}'::integer[]::embedding$$),
	('typmod mismatch', $$SELECT ARRAY[1,2]::embedding(3)$$),
	('too many dimensions', $$SELECT array_fill(1, ARRAY[16001])::embedding$$),
	('real NaN', $$SELECT ARRAY[1,'NaN']::real[]::embedding$$),
	('real Infinity', $$SELECT ARRAY['Infinity']::real[]::embedding$$),
	('double NaN', $$SELECT ARRAY[1,'NaN']::float8[]::embedding$$),
	('double -Infinity', $$SELECT ARRAY[1,2,'-Infinity']::float8[]::embedding$$),
	('double overflow', $$SELECT ARRAY[1,1e300]::float8[]::embedding$$),
	('double underflow', $$SELECT ARRAY[1e-300]::float8[]::embedding$$),
	('numeric NaN', $$SELECT ARRAY[1,'NaN']::numeric[]::embedding$$),
	('numeric Infinity', $$SELECT ARRAY['Infinity']::numeric[]::embedding$$),
	('numeric -Infinity', $$SELECT ARRAY[1,'-Infinity']::numeric[]::embedding$$),
	('numeric overflow', $$SELECT ARRAY[1,1e39]::numeric[]::embedding$$),
	('numeric beyond double', $$SELECT ARRAY[1e400]::numeric[]::embedding$$),
	('numeric underflow', $$SELECT ARRAY[1e-60]::numeric[]::embedding$$),
	('to integer, out of range', $$SELECT '[1,3e9]'::embedding::integer[]$$),
	('text array', $$SELECT ARRAY['1']::text[]::embedding$$)
) t(what, statement);

DROP TABLE embedding_cast_t, embedding_cast_arrays, embedding_cast_integers;
