#!/usr/bin/env bash
# The README's first command: installs what it needs, builds and installs the
# extension, starts a throwaway cluster, loads sample embeddings, runs an exact
# nearest-neighbour query, prints the hits and stops the cluster.
# Usage (as root on Debian 12): tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
make -s -j2 && make -s install

. tools/cluster.sh
cluster_start 54338
psql() { as_postgres "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# Until the encoders are in, the samples are deterministic 512-d embeddings:
# 20 topics, each a random direction, and 50 documents per topic scattered
# around it.  A new sample of topic 7 must find topic 7's documents.
psql <<'SQL'
CREATE EXTENSION crossmodal;

CREATE TABLE documents (id bigserial PRIMARY KEY, title text, emb embedding(512));

-- Deterministic pseudo-random embedding (a hash of seed and position), unit length.
CREATE FUNCTION pseudo_random_embedding(seed int) RETURNS embedding
LANGUAGE sql IMMUTABLE AS $$
	SELECT l2_normalize(array_agg((h - floor(h) - 0.5)::real ORDER BY i)::embedding)
	FROM (SELECT i, sin(seed * 12.9898 + i * 78.233) * 43758.5453 AS h FROM generate_series(1, 512) i) s
$$;
-- A sample near a topic: the topic's direction plus a smaller random one.
CREATE FUNCTION sample_embedding(topic int, seed int) RETURNS embedding
LANGUAGE sql IMMUTABLE AS $$
	SELECT l2_normalize(pseudo_random_embedding(topic)
						+ (SELECT array_agg(0.8 * x)::real[]::embedding
						   FROM unnest(pseudo_random_embedding(100000 + seed)::real[]) x))
$$;

INSERT INTO documents (title, emb)
SELECT format('topic %s, document %s', t, d), sample_embedding(t, 1000 * t + d)
FROM generate_series(1, 20) t, generate_series(1, 50) d;

\echo
SELECT count(*) AS documents, min(dims(emb)) AS dimensions FROM documents;

\echo 'The 5 nearest documents by cosine distance (<=>) to a new sample of topic 7:'
SELECT id, title, round((emb <=> sample_embedding(7, 999999))::numeric, 4) AS cosine_distance
FROM documents
ORDER BY emb <=> sample_embedding(7, 999999)
LIMIT 5;
SQL
cluster_stop
echo "demo done: cluster stopped and removed."
