-- encode_precision: crossmodal.precision.  bf16 (bfloat16 matrix products)
-- against the default f32 on both golden models, texts and images: the
-- embeddings differ (another path ran) and stay within cosine 0.9999 of
-- f32's; an unknown value is refused.

\getenv abs_srcdir PG_ABS_SRCDIR
\set golden :abs_srcdir '/golden'
\set images :abs_srcdir '/golden/images/'
SET crossmodal.model_path = :'golden';

CREATE TEMP TABLE inputs (model text, kind text, input text);
INSERT INTO inputs
SELECT m, 'text', t
FROM unnest(ARRAY['tiny-clip-quickgelu-f32', 'tiny-clip-gelu-p16-f16']) AS m,
     unnest(ARRAY['a photo of a cat', 'café naïve façade', repeat('the quick brown fox ', 30)]) AS t
UNION ALL
SELECT m, 'image', f
FROM unnest(ARRAY['tiny-clip-quickgelu-f32', 'tiny-clip-gelu-p16-f16']) AS m,
     unnest(ARRAY['landscape_320x240.png', 'progressive_300x200.jpg']) AS f;

CREATE TEMP TABLE f32 AS
SELECT model, kind, input,
       CASE kind WHEN 'text' THEN encode_text(model, input)
                 ELSE encode_image(model, pg_read_binary_file(:'images' || input)) END AS e
FROM inputs;

-- The default (the library is loaded now).
SHOW crossmodal.precision;

SET crossmodal.precision = bf16;
SHOW crossmodal.precision;
CREATE TEMP TABLE bf16 AS
SELECT model, kind, input,
       CASE kind WHEN 'text' THEN encode_text(model, input)
                 ELSE encode_image(model, pg_read_binary_file(:'images' || input)) END AS e
FROM inputs;

SELECT f.model, f.kind, count(*) AS inputs,
       bool_and(1 - (f.e <=> b.e) > 0.9999) AS within_1e_4,
       bool_or(f.e::text <> b.e::text) AS differ
FROM f32 f JOIN bf16 b USING (model, kind, input)
GROUP BY f.model, f.kind ORDER BY 1, 2;

-- The batch form at bf16 agrees with the single form.
SELECT bool_and(1 - (b.e <=> x.e) > 0.99999) AS batch_agrees
FROM bf16 b
JOIN unnest((SELECT array_agg(input ORDER BY input) FROM inputs WHERE kind = 'text' AND model = 'tiny-clip-quickgelu-f32'),
            encode_texts('tiny-clip-quickgelu-f32',
                        (SELECT array_agg(input ORDER BY input) FROM inputs WHERE kind = 'text' AND model = 'tiny-clip-quickgelu-f32')))
     AS x(input, e) USING (input)
WHERE b.model = 'tiny-clip-quickgelu-f32' AND b.kind = 'text';

-- Back to f32: the same embeddings as before.
RESET crossmodal.precision;
SELECT bool_and(encode_text(model, input)::text = e::text) AS f32_again
FROM f32 WHERE kind = 'text';

SET crossmodal.precision = int8;
