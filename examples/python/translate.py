#!/usr/bin/env python3
"""Cross-modal "translation" by retrieval, from Python (psycopg 3).

A joint text-image embedding lets a table of texts caption an image, and a
table of images illustrate a text: the nearest neighbours across modalities.
  - image -> text: the nearest captions of each image, from a table of captions
    (English and Korean, none of them attached to the image);
  - text -> image: the nearest images for a recipe's text.

    python3 examples/python/translate.py [SAMPLES_DIR]
"""
import csv
import os
import sys

import psycopg
from psycopg import sql

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RECIPES = {
    "salad": "Wash the lettuce, slice a cucumber and a tomato, toss with olive oil and lemon: a green salad.",
    "sweet potato": "Roast the sweet potatoes in their skins for an hour until soft, then split them open.",
}


def main():
    with psycopg.connect(autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS crossmodal")
        # The extension's settings exist once its library is loaded in the
        # session, which any use of the extension does (here, the type's input).
        model = conn.execute(
            "SELECT current_setting('crossmodal.default_model') FROM (SELECT '[0]'::embedding) AS load"
        ).fetchone()[0]
        samples = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models", model, "samples")
        with open(os.path.join(samples, "captions.tsv"), encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))

        m = sql.Literal(model)
        conn.execute("DROP TABLE IF EXISTS py_pictures, py_captions")
        conn.execute(sql.SQL(
            """CREATE TABLE py_pictures (file text PRIMARY KEY, data bytea NOT NULL,
                   emb embedding GENERATED ALWAYS AS (encode_image({}, data)) STORED)""").format(m))
        conn.execute(sql.SQL(
            """CREATE TABLE py_captions (id serial PRIMARY KEY, lang text, caption text NOT NULL,
                   emb embedding GENERATED ALWAYS AS (encode_text({}, caption)) STORED)""").format(m))
        with conn.cursor() as cur:
            # COPY streams the rows; the server computes every embedding.
            with cur.copy("COPY py_pictures (file, data) FROM STDIN") as copy:
                for row in rows:
                    with open(os.path.join(samples, row["file"]), "rb") as img:
                        copy.write_row([row["file"], img.read()])
            with cur.copy("COPY py_captions (lang, caption) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(["en", row["english"]])
                    copy.write_row(["ko", row["korean"]])

        truth = {r["file"]: r["english"] for r in rows}
        print("image -> nearest captions (the image's own caption in brackets):")
        for file in [r["file"] for r in rows[:4]]:
            hits = conn.execute(
                """SELECT c.lang, c.caption FROM py_captions c
                   ORDER BY c.emb <=> (SELECT emb FROM py_pictures WHERE file = %s) LIMIT 3""",
                [file],
            ).fetchall()
            print(f"  {file} [{truth[file]}]: " + " | ".join(f"{caption} ({lang})" for lang, caption in hits))

        print("\nrecipe -> nearest images:")
        for name, recipe in RECIPES.items():
            hits = conn.execute(
                """WITH q AS MATERIALIZED (SELECT encode_text(%s) AS e)
                   SELECT file FROM py_pictures ORDER BY emb <=> (SELECT e FROM q) LIMIT 3""",
                [recipe],
            ).fetchall()
            print(f"  {name}: " + ", ".join(f"{f} ({truth[f]})" for (f,) in hits))


if __name__ == "__main__":
    main()
