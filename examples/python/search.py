#!/usr/bin/env python3
"""Image search with crossmodal from Python (psycopg 3).

Stores the sample images in a table whose embedding column the server computes
(a generated encode_image column), indexes it, then:
  - searches the images by text, in English and in Korean;
  - finds the images most similar to one image, passing its embedding back as a
    query parameter in the text form and in the binary form;
  - gives zero-shot labels for an image.

Connects with the usual libpq settings (PGHOST, PGPORT, PGDATABASE, PGUSER...);
the database needs CREATE EXTENSION rights, or the extension already created.

    python3 examples/python/search.py [SAMPLES_DIR]

SAMPLES_DIR holds the PNG files and captions.tsv (columns file, english,
korean); it defaults to the default model's samples in this repository.
"""
import csv
import os
import sys

import psycopg
from psycopg import sql

from embedding import Embedding, register_embedding

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    # autocommit: each statement commits on its own, as in psql.
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS crossmodal")
        register_embedding(conn)
        # The extension's settings exist once its library is loaded in the
        # session, which any use of the extension does (here, the type's input).
        model = conn.execute(
            "SELECT current_setting('crossmodal.default_model') FROM (SELECT '[0]'::embedding) AS load"
        ).fetchone()[0]
        samples = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models", model, "samples")

        # The embedding is computed by the server when a row is written.  A
        # generated column needs the IMMUTABLE form that names its model.
        conn.execute("DROP TABLE IF EXISTS py_images")
        conn.execute(
            sql.SQL(
                """CREATE TABLE py_images (
                       id bigserial PRIMARY KEY,
                       file text NOT NULL,
                       caption text,
                       data bytea NOT NULL,
                       emb embedding GENERATED ALWAYS AS (encode_image({}, data)) STORED)"""
            ).format(sql.Literal(model))
        )
        with open(os.path.join(samples, "captions.tsv"), encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        with conn.cursor() as cur:
            for row in rows:
                with open(os.path.join(samples, row["file"]), "rb") as img:
                    # bytes go to a bytea parameter in the binary form.
                    cur.execute(
                        "INSERT INTO py_images (file, caption, data) VALUES (%s, %s, %b)",
                        [row["file"], row["english"], img.read()],
                    )
        conn.execute("CREATE INDEX ON py_images USING crossmodal_hnsw (emb embedding_cosine_ops)")
        conn.execute("ANALYZE py_images")
        print(f"stored {len(rows)} images from {samples} (model {model})")

        # 1. Text search, English and Korean.  The CTE encodes the query text
        # once (not once per row), and the index serves the ORDER BY.
        queries = [rows[0]["english"], rows[0]["korean"], rows[1]["english"], rows[1]["korean"]]
        for q in queries:
            hits = conn.execute(
                """WITH q AS MATERIALIZED (SELECT encode_text(%s) AS e)
                   SELECT file, caption, round((emb <=> (SELECT e FROM q))::numeric, 3)
                   FROM py_images ORDER BY emb <=> (SELECT e FROM q) LIMIT 3""",
                [q],
            ).fetchall()
            print(f"\ntext {q!r}:")
            for file, caption, distance in hits:
                print(f"  {distance}  {file}  ({caption})")

        # 2. Similar images.  Fetch one image's embedding to the client (as an
        # Embedding) and send it back as a parameter, in both forms.
        first = rows[2]["file"]
        emb = conn.execute("SELECT emb FROM py_images WHERE file = %s", [first]).fetchone()[0]
        assert isinstance(emb, Embedding)
        similar = "SELECT file FROM py_images ORDER BY emb <=> {} LIMIT 4"
        as_text = [r[0] for r in conn.execute(similar.format("%t"), [emb])]
        as_binary = [r[0] for r in conn.execute(similar.format("%b"), [emb])]
        with conn.cursor(binary=True) as cur:  # binary results too
            cur.execute("SELECT emb FROM py_images WHERE file = %s", [first])
            emb_from_binary = cur.fetchone()[0]
        print(f"\nimages similar to {first}: {', '.join(as_text[1:])}")
        # The same query by both forms, and the same value read back in both.
        # (Text results parse to Python doubles, binary ones are float4 values:
        # compare them as float4.)
        if as_text != as_binary or as_text[0] != first or emb_from_binary.float4() != emb.float4():
            sys.exit(f"text and binary forms disagree: {as_text} {as_binary}")
        print(f"  (same answer with the embedding sent in text and binary form; {len(emb)} dimensions)")

        # 3. Zero-shot labels for one image, among candidate texts.
        labels = [r["english"] for r in rows[:8]]
        print(f"\nzero-shot labels for {first}:")
        for label, score in conn.execute(
            "SELECT label, score FROM image_labels((SELECT data FROM py_images WHERE file = %s), %s, 3)",
            [first, labels],
        ):
            print(f"  {score:.3f}  {label}")


if __name__ == "__main__":
    main()
