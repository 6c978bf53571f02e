// Image search with crossmodal from Node.js (pg).
//
// Stores the sample images in a table whose embedding column the server
// computes (a generated encode_image column), indexes it, then searches the
// images by text in English and in Korean, finds the images most similar to
// one image (its embedding read in the text and the binary form and sent back
// as a parameter in both), and gives zero-shot labels for an image.
//
// Connects with the usual libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER...).
//   cd examples/node && npm install && node search.mjs [SAMPLES_DIR]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { parseBinary, registerEmbedding, toBinary, toText } from './embedding.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function readCaptions(dir) {
  const [header, ...lines] = fs.readFileSync(path.join(dir, 'captions.tsv'), 'utf8').trim().split('\n');
  const cols = header.split('\t');
  return lines.map((line) => Object.fromEntries(line.split('\t').map((v, i) => [cols[i], v])));
}

const client = new pg.Client();
await client.connect();
try {
  await client.query('CREATE EXTENSION IF NOT EXISTS crossmodal');
  await registerEmbedding(client, pg.types);
  // The extension's settings exist once its library is loaded in the session,
  // which any use of the extension does (here, the type's input).
  const { rows: [{ model }] } = await client.query(
    "SELECT current_setting('crossmodal.default_model') AS model FROM (SELECT '[0]'::embedding) AS load");
  const samples = process.argv[2] ?? path.join(repo, 'models', model, 'samples');
  const rows = readCaptions(samples);

  // A generated column needs the IMMUTABLE form that names its model.
  await client.query('DROP TABLE IF EXISTS js_images');
  await client.query(`CREATE TABLE js_images (
      id bigserial PRIMARY KEY,
      file text NOT NULL,
      caption text,
      data bytea NOT NULL,
      emb embedding GENERATED ALWAYS AS (encode_image(${client.escapeLiteral(model)}, data)) STORED)`);
  for (const row of rows) {
    // A Buffer goes to the bytea parameter in the binary form.
    await client.query('INSERT INTO js_images (file, caption, data) VALUES ($1, $2, $3)',
      [row.file, row.english, fs.readFileSync(path.join(samples, row.file))]);
  }
  await client.query('CREATE INDEX ON js_images USING crossmodal_hnsw (emb embedding_cosine_ops)');
  await client.query('ANALYZE js_images');
  console.log(`stored ${rows.length} images from ${samples} (model ${model})`);

  // 1. Text search, English and Korean.  The CTE encodes the query text once
  // (not once per row), and the index serves the ORDER BY.
  for (const q of [rows[0].english, rows[0].korean, rows[1].english, rows[1].korean]) {
    const { rows: hits } = await client.query(
      `WITH q AS MATERIALIZED (SELECT encode_text($1) AS e)
       SELECT file, caption, round((emb <=> (SELECT e FROM q))::numeric, 3) AS distance
       FROM js_images ORDER BY emb <=> (SELECT e FROM q) LIMIT 3`, [q]);
    console.log(`\ntext '${q}':`);
    for (const h of hits) console.log(`  ${h.distance}  ${h.file}  (${h.caption})`);
  }

  // 2. Similar images: one image's embedding comes to the client (a
  // Float32Array) and goes back as a parameter, in the text and binary forms.
  const first = rows[2].file;
  const { rows: [{ emb }] } = await client.query('SELECT emb FROM js_images WHERE file = $1', [first]);
  const similar = 'SELECT file FROM js_images ORDER BY emb <=> $1::embedding LIMIT 4';
  const asText = (await client.query(similar, [toText(emb)])).rows.map((r) => r.file);
  const asBinary = (await client.query(similar, [toBinary(emb)])).rows.map((r) => r.file);
  // pg reads every result field as UTF-8 text (its binary result mode is
  // unfinished), so the binary form of a result comes through bytea: the
  // type's send function gives exactly the bytes of the binary protocol.
  const { rows: [{ bin }] } = await client.query(
    'SELECT embedding_send(emb) AS bin FROM js_images WHERE file = $1', [first]);
  const embFromBinary = parseBinary(bin);
  console.log(`\nimages similar to ${first}: ${asText.slice(1).join(', ')}`);
  const same = asText.join() === asBinary.join() && asText[0] === first
    && embFromBinary.length === emb.length && embFromBinary.every((x, i) => x === emb[i]);
  if (!same) {
    console.error(`text and binary forms disagree: ${asText} / ${asBinary}`);
    process.exitCode = 1;
  } else {
    console.log(`  (same answer with the embedding sent in text and binary form; ${emb.length} dimensions)`);
  }

  // 3. Zero-shot labels for one image, among candidate texts.
  const labels = rows.slice(0, 8).map((r) => r.english);
  const { rows: scored } = await client.query(
    'SELECT label, score FROM image_labels((SELECT data FROM js_images WHERE file = $1), $2, 3)', [first, labels]);
  console.log(`\nzero-shot labels for ${first}:`);
  for (const s of scored) console.log(`  ${s.score.toFixed(3)}  ${s.label}`);
} finally {
  await client.end();
}
