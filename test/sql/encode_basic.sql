-- encode_basic: the SQL encoders against the golden tiny models (test/golden,
-- reference figures from Hugging Face transformers in expected.json):
-- embeddings of known texts and image files, batch = single, generated
-- columns, an expression index, zero-shot labels, the model listing,
-- parallel workers and the database-encoding conversion.
--
-- Golden figures are unnormalised features; the encoders return unit
-- vectors, so they are compared by cosine (scale-free) as the runtime's own
-- tests do: cosine > 0.99999.

\getenv abs_srcdir PG_ABS_SRCDIR
SELECT current_database() AS regress_db \gset
\set golden :abs_srcdir '/golden'
\set images :abs_srcdir '/golden/images/'
SET crossmodal.model_path = :'golden';
\set m32 '''tiny-clip-quickgelu-f32'''
\set m16 '''tiny-clip-gelu-p16-f16'''

-- The models the path holds (directories relative to the path).
SELECT name, replace(directory, :'golden', '$GOLDEN') AS directory, dimensions, image_size,
       parameters, weight_dtype, loaded, problem
FROM crossmodal_models();

-- Texts: plain, accented (UTF-8), and one longer than 77 tokens (truncated).
SELECT dims(encode_text(:m32, 'a photo of a cat')) AS dims,
       1 - (encode_text(:m32, 'a photo of a cat') <=> '[-2.54176092,-0.644241512,-0.625242591,-0.126220524,1.4068166,-0.496267706,-1.592363,-0.728185415,-0.379515409,0.231863439,0.069152087,-0.894309044,-1.27553356,0.558842659,-0.504860282,2.00136375,-1.20672953,-0.270926774,0.622227132,0.408991456,-0.556974769,0.583122611,-0.0945450887,0.814141452,-0.398102582,-1.00129974,-1.84235442,0.168251619,0.010592632,1.12441897,0.579131961,0.74571991,0.441960067,-0.924672782,1.43756223,0.266329408,0.922605395,-1.22395897,-2.7002387,0.732482553,-0.602641165,-0.382093251,0.728390694,-0.323267013,0.383318603,-0.0146506801,0.111550391,-0.0996483862]'::embedding) > 0.99999 AS cat,
       1 - (encode_text(:m32, 'café naïve façade') <=> '[-1.76373017,0.0150011182,0.183935136,0.744029701,0.603143394,1.0962975,-1.96795142,0.597501218,-1.0393492,0.0930929482,0.334903836,-1.71360123,1.08375001,-1.62867987,-1.06257617,0.874101877,0.294323295,0.194457009,-0.660284698,-1.64766002,-0.686360002,-1.76153505,-1.49888778,-0.95559448,1.50900388,0.199022382,-1.47812843,-1.38880444,-0.205635339,-0.10919103,-0.331813484,-0.140075535,-0.485005498,-0.538369119,-1.18972945,0.720696449,-0.822714508,-0.513560534,-2.47384477,-1.12863052,-1.18481922,-0.0832633972,1.52542067,-1.55865085,-0.131502569,-1.08310199,0.963245988,-2.3862164]'::embedding) > 0.99999 AS accents,
       1 - (encode_text(:m32, repeat('the quick brown fox jumps over the lazy dog ', 12)) <=> '[-0.499155164,1.59201837,1.97934222,1.31980944,0.456466854,1.89067006,-0.147354811,2.16221142,-0.754559994,1.16018856,1.21416903,-0.449474812,1.67247701,-0.119240567,-0.983182907,0.390547872,0.800338209,-0.725206733,0.0029951334,-2.99207878,-0.316420436,-0.822664559,-1.71691442,-1.21803021,1.13989735,-1.95399702,-1.2526412,-0.0847538412,-0.920776844,-0.756324232,0.737457097,-0.824989736,-0.726548553,0.979762137,-1.08012795,0.578818798,-0.334116668,1.8850702,-1.13878894,-1.98781312,-0.532583714,-0.124599487,0.59642911,-1.30253685,1.05962753,0.422703207,1.59310174,-1.61477876]'::embedding) > 0.99999 AS truncated;
SELECT dims(encode_text(:m16, 'a photo of a cat')) AS dims,
       1 - (encode_text(:m16, 'a photo of a cat') <=> '[2.1057806,0.90650636,-0.573818088,-0.570175409,0.864582002,-0.157877415,0.224735498,0.403667927,-1.01222038,-0.0699521303,-0.822791696,2.77126265,1.91429603,2.64085937,1.71209574,0.510596335,0.820103407,-0.0901663303,0.240387857,-0.112600505,-0.292053938,1.81925225,-0.926937342,-0.0407065004,0.853795886,-0.0753816664,-0.51398021,-0.31391263,-0.904216886,0.347122908,0.0289804339,1.55767012,1.96219063,-0.386465311,-0.106414706,-0.0655618235,0.291229814,-2.47609711,-0.422235072,-1.06807208]'::embedding) > 0.99999 AS f16_cat;

-- Unit vectors.
SELECT abs(norm(encode_text(:m32, 'a photo of a cat')) - 1) < 1e-5 AS unit_text,
       abs(norm(encode_image(:m32, pg_read_binary_file(:'images' || 'gray_64x48.png'))) - 1) < 1e-5 AS unit_image;

-- Image files through the runtime's decoder and resizer (PNG, progressive
-- JPEG, palette GIF; both models).
SELECT dims(encode_image(:m32, pg_read_binary_file(:'images' || 'landscape_320x240.png'))) AS dims,
       1 - (encode_image(:m32, pg_read_binary_file(:'images' || 'landscape_320x240.png')) <=> '[-0.141134366,-0.0464431867,-0.163069353,-0.105291106,0.14970617,-0.0336445644,-0.169653118,0.0368353799,-0.0615160279,-0.125593513,-0.0830163062,-0.012880858,0.0836078823,0.0810249597,0.0758495033,0.00411505252,-0.019230267,-0.162561387,-0.0519988649,-0.0120068695,0.228661299,-0.142130151,-0.0455186665,-0.0021829186,0.0693381578,0.0204432141,0.191589028,0.111935556,0.00583488401,-0.116802841,-0.0656599626,-0.12805751,-0.109758243,0.0935861915,-0.128047094,-0.236002788,0.0379284881,-0.0629350394,0.103107698,0.125936091,0.0727579892,0.0474580787,-0.0715333819,-0.0689988211,0.0159025956,0.0306160394,-0.011292276,0.00899828598]'::embedding) > 0.99999 AS png,
       1 - (encode_image(:m32, pg_read_binary_file(:'images' || 'progressive_300x200.jpg')) <=> '[-0.144518018,-0.0392279029,-0.0914678127,0.0141884536,0.15414989,-0.026146248,-0.150989652,0.0209274925,-0.0456753373,-0.157331496,-0.152470782,0.0382810757,0.0499050841,0.0332902633,0.059151262,-0.0322453752,0.00393422414,-0.169297174,-0.0390264727,-0.0490795597,0.306770623,-0.149660617,-0.0229261965,-0.0152594987,0.0844607204,-0.0198527575,0.165511459,0.0547294877,0.015630994,-0.136972532,-0.0770209432,-0.0651202202,-0.0640021265,0.0562574044,-0.157424003,-0.198142424,0.0735721588,0.0332644954,0.103495546,0.20845747,0.131355837,0.0331180058,-0.0703064874,-0.0380863063,0.0267701074,0.0216687191,0.0290140305,-0.0468026102]'::embedding) > 0.99999 AS jpeg,
       1 - (encode_image(:m32, pg_read_binary_file(:'images' || 'palette_150x90.gif')) <=> '[-0.133498475,-0.0530637354,-0.0915457606,-0.00610526837,0.0865706801,0.00465368107,-0.168111071,0.0155611224,-0.0212174654,-0.163837746,-0.150552928,0.0261991136,0.0357463695,0.0453132279,0.11084342,0.0195924304,-0.0178428069,-0.187059984,-0.0319923908,0.0380408317,0.232696339,-0.155725688,-0.039251402,-0.024271477,0.10668914,0.019607313,0.126868516,0.100132786,-0.0639757439,-0.0690839887,-0.0486578792,-0.119328946,-0.12954773,0.0583903268,-0.0795687288,-0.247346148,0.08777944,-0.0111586787,0.106056601,0.144375116,0.119963512,-0.0163008217,-0.0475225039,-0.0749698877,-0.0297326222,0.0221713707,0.0382448584,0.00631542131]'::embedding) > 0.99999 AS gif,
       1 - (encode_image(:m16, pg_read_binary_file(:'images' || 'landscape_320x240.png')) <=> '[0.0617096871,-0.00738480408,-0.000485911965,-0.0809009075,0.112944581,0.194210678,0.0460619666,0.0786915421,0.0749266446,-0.0280026048,-0.0957854465,-0.0674490184,-0.101993077,0.0562948883,0.0250615813,-0.180823877,0.223871022,0.101439543,0.0799167901,-0.102139167,0.088373825,-0.0344744138,0.0305680931,0.032748431,0.0239133276,-0.0538832285,0.0274723992,-0.0336788818,-0.0834415182,-0.18043898,0.0337443203,-0.139570981,-0.0357408673,-0.141484395,0.115290649,0.0827834606,-0.153489918,-0.137885779,-0.0521150455,0.127733409]'::embedding) > 0.99999 AS f16_png;

-- Now both models are loaded in this backend.
SELECT name, loaded FROM crossmodal_models();

-- The forms without a model use crossmodal.default_model.
SET crossmodal.default_model = 'tiny-clip-quickgelu-f32';
SELECT encode_text('a photo of a cat') = encode_text(:m32, 'a photo of a cat') AS text_default,
       encode_image(pg_read_binary_file(:'images' || 'tiny_7x5.png'))
         = encode_image(:m32, pg_read_binary_file(:'images' || 'tiny_7x5.png')) AS image_default;

-- Batch = single, element by element, in order (tolerance: the batched
-- matrix products may round differently).
CREATE TEMP TABLE img (file text PRIMARY KEY, data bytea);
INSERT INTO img
SELECT f, pg_read_binary_file(:'images' || f)
FROM unnest(ARRAY['exact_224x224.bmp', 'gray_64x48.png', 'landscape_320x240.png',
                  'palette_150x90.gif', 'portrait_240x320_q92.jpg', 'progressive_300x200.jpg',
                  'rgba_100x100.png', 'subsampled_411_257x171.jpg', 'tiny_7x5.png',
                  'wide_1000x30.png']) f;
WITH t(texts) AS (SELECT ARRAY['a photo of a cat', '', 'café', '日本語のテキスト', 'emoji 🐱🐶', 'a dog'])
SELECT count(*) AS n, bool_and(e <-> encode_text(:m32, x) < 1e-5) AS texts_match
FROM t, unnest(texts, encode_texts(:m32, texts)) AS u(x, e);
SELECT count(*) AS n, bool_and(u.e <-> encode_image(:m16, img.data) < 1e-5) AS images_match
FROM (SELECT array_agg(file ORDER BY file) f, array_agg(data ORDER BY file) d FROM img) a,
     unnest(a.f, encode_images(:m16, a.d)) AS u(file, e)
     JOIN img USING (file);
SELECT cardinality(encode_texts(ARRAY['x', 'y'])) AS default_texts,
       cardinality(encode_images(ARRAY[(SELECT data FROM img WHERE file = 'tiny_7x5.png')])) AS default_images;

-- Empty arrays give empty arrays.
SELECT encode_texts(:m32, '{}'::text[]) AS no_texts, encode_images(:m32, '{}'::bytea[]) AS no_images;

-- Generated columns.
CREATE TABLE photos (
	id int PRIMARY KEY,
	caption text,
	data bytea,
	emb embedding GENERATED ALWAYS AS (encode_image('tiny-clip-quickgelu-f32', data)) STORED,
	caption_emb embedding(48) GENERATED ALWAYS AS (encode_text('tiny-clip-quickgelu-f32', caption)) STORED
);
INSERT INTO photos (id, caption, data)
SELECT row_number() OVER (ORDER BY file), 'a photo of ' || file, data FROM img;
SELECT count(*) AS n,
       bool_and(emb = encode_image(:m32, data)) AS image_column,
       bool_and(caption_emb = encode_text(:m32, caption)) AS text_column
FROM photos;
SELECT 1 - (emb <=> '[-0.141134366,-0.0464431867,-0.163069353,-0.105291106,0.14970617,-0.0336445644,-0.169653118,0.0368353799,-0.0615160279,-0.125593513,-0.0830163062,-0.012880858,0.0836078823,0.0810249597,0.0758495033,0.00411505252,-0.019230267,-0.162561387,-0.0519988649,-0.0120068695,0.228661299,-0.142130151,-0.0455186665,-0.0021829186,0.0693381578,0.0204432141,0.191589028,0.111935556,0.00583488401,-0.116802841,-0.0656599626,-0.12805751,-0.109758243,0.0935861915,-0.128047094,-0.236002788,0.0379284881,-0.0629350394,0.103107698,0.125936091,0.0727579892,0.0474580787,-0.0715333819,-0.0689988211,0.0159025956,0.0306160394,-0.011292276,0.00899828598]'::embedding) > 0.99999 AS golden_in_column
FROM photos WHERE caption = 'a photo of landscape_320x240.png';
UPDATE photos SET data = (SELECT data FROM img WHERE file = 'tiny_7x5.png') WHERE id = 1;
SELECT emb = encode_image(:m32, data) AS recomputed_on_update FROM photos WHERE id = 1;

-- Search over the generated column: an image is nearest to itself.
SELECT caption FROM photos
ORDER BY emb <=> encode_image(:m32, (SELECT data FROM img WHERE file = 'gray_64x48.png')) LIMIT 1;

-- An expression index.
CREATE INDEX photos_caption_enc ON photos ((encode_text('tiny-clip-quickgelu-f32', caption)));
SET enable_seqscan = off;
-- (The constant side in a sub-select, so the plan does not print the vector.)
EXPLAIN (COSTS OFF)
SELECT id FROM photos WHERE encode_text('tiny-clip-quickgelu-f32', caption)
                            = (SELECT encode_text('tiny-clip-quickgelu-f32', 'a photo of gray_64x48.png'));
SELECT id, caption FROM photos WHERE encode_text('tiny-clip-quickgelu-f32', caption)
                                     = encode_text('tiny-clip-quickgelu-f32', 'a photo of gray_64x48.png');
RESET enable_seqscan;

-- Zero-shot labels: k best, ordered by score, scores a softmax over all the
-- labels of logit_scale x cosine (checked against the same formula in SQL
-- with the golden logit_scale).
CREATE TEMP TABLE labels AS
SELECT ARRAY['a photo of a cat', 'a photo of a dog', 'a landscape', 'a diagram',
             'a red square', 'text', 'a person'] AS l;
SELECT count(*) AS k5 FROM labels, img, image_labels(:m32, img.data, labels.l)
WHERE img.file = 'landscape_320x240.png';
SELECT count(*) AS k2 FROM labels, img, image_labels(:m32, img.data, labels.l, 2)
WHERE img.file = 'landscape_320x240.png';
SELECT count(*) AS k_over_n FROM labels, img, image_labels(:m32, img.data, labels.l, 100)
WHERE img.file = 'landscape_320x240.png';
WITH got AS (
	SELECT img.file, r.label, r.score, row_number() OVER (PARTITION BY img.file) AS pos
	FROM img, labels, image_labels(:m32, img.data, labels.l, 100) r
), ref AS (
	SELECT img.file, x.label,
	       exp(14.2857141 * (1 - (encode_image(:m32, img.data) <=> encode_text(:m32, x.label))))
	       / sum(exp(14.2857141 * (1 - (encode_image(:m32, img.data) <=> encode_text(:m32, x.label)))))
	         OVER (PARTITION BY img.file) AS score
	FROM img, labels, unnest(labels.l) x(label)
)
SELECT count(DISTINCT got.file) AS images,
       bool_and(abs(got.score - ref.score) < 1e-5) AS scores_match,
       (SELECT bool_and(abs(s - 1) < 1e-5) FROM (SELECT sum(score) s FROM got GROUP BY file) t) AS sums_to_one,
       (SELECT bool_and(ordered) FROM (
            SELECT score <= lag(score, 1, 2::real) OVER (PARTITION BY file ORDER BY pos) AS ordered FROM got) o)
         AS ordered_by_score
FROM got JOIN ref USING (file, label);
-- Default model form and default k.
SELECT count(*) AS default_k FROM labels, img, image_labels(img.data, labels.l) WHERE img.file = 'gray_64x48.png';
-- No labels: no rows.
SELECT count(*) AS no_labels FROM img, image_labels(:m32, img.data, '{}'::text[]) WHERE img.file = 'gray_64x48.png';

-- Parallel workers load the model themselves and compute the same values.
CREATE TABLE captions AS
SELECT g AS id, 'caption number ' || g AS caption FROM generate_series(1, 300) g;
ANALYZE captions;
SELECT sum(cosine_distance(encode_text('tiny-clip-quickgelu-f32', caption), encode_text(:m32, 'caption')))
  AS serial_sum FROM captions \gset
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF)
SELECT sum(cosine_distance(encode_text('tiny-clip-quickgelu-f32', caption), encode_text(:m32, 'caption')))
FROM captions;
SELECT abs(sum(cosine_distance(encode_text('tiny-clip-quickgelu-f32', caption), encode_text(:m32, 'caption')))
           - :serial_sum) < 1e-6 AS parallel_matches_serial
FROM captions;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Text is converted from the database encoding to UTF-8: a LATIN1 database
-- gives the same embedding for the same characters.
SELECT encode_text(:m32, 'café naïve façade')::text AS utf8_emb \gset
CREATE DATABASE crossmodal_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c crossmodal_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION crossmodal;
SET crossmodal.model_path = :'golden';
SELECT encode_text('tiny-clip-quickgelu-f32', 'café naïve façade') = :'utf8_emb'::embedding AS latin1_same;
\c :regress_db
DROP DATABASE crossmodal_latin1;

DROP TABLE photos, captions;
