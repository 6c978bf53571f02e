// Cross-modal "translation" by retrieval, from Node.js (pg).
//
// A joint text-image embedding lets a table of texts caption an image, and a
// table of images illustrate a text: the nearest neighbours across modalities.
//   - image -> text: the nearest captions of each image, from a table of
//     captions (English and Korean, none of them attached to the image);
//   - text -> image: the nearest images for a recipe's text.
//
//   cd examples/node && npm install && node translate.mjs [SAMPLES_DIR]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const recipes = {
  salad: 'Wash the lettuce, slice a cucumber and a tomato, toss with olive oil and lemon: a green salad.',
  'sweet potato': 'Roast the sweet potatoes in their skins for an hour until soft, then split them open.',
};

const client = new pg.Client();
await client.connect();
try {
  await client.query('CREATE EXTENSION IF NOT EXISTS crossmodal');
  const { rows: [{ model }] } = await client.query(
    "SELECT current_setting('crossmodal.default_model') AS model FROM (SELECT '[0]'::embedding) AS load");
  const samples = process.argv[2] ?? path.join(repo, 'models', model, 'samples');
  const [header, ...lines] = fs.readFileSync(path.join(samples, 'captions.tsv'), 'utf8').trim().split('\n');
  const cols = header.split('\t');
  const rows = lines.map((line) => Object.fromEntries(line.split('\t').map((v, i) => [cols[i], v])));

  const m = client.escapeLiteral(model);
  await client.query('DROP TABLE IF EXISTS js_pictures, js_captions');
  await client.query(`CREATE TABLE js_pictures (file text PRIMARY KEY, data bytea NOT NULL,
      emb embedding GENERATED ALWAYS AS (encode_image(${m}, data)) STORED)`);
  await client.query(`CREATE TABLE js_captions (id serial PRIMARY KEY, lang text, caption text NOT NULL,
      emb embedding GENERATED ALWAYS AS (encode_text(${m}, caption)) STORED)`);
  // One statement per table: arrays of parameters, unnested by the server.
  await client.query('INSERT INTO js_pictures (file, data) SELECT * FROM unnest($1::text[], $2::bytea[])',
    [rows.map((r) => r.file), rows.map((r) => fs.readFileSync(path.join(samples, r.file)))]);
  await client.query('INSERT INTO js_captions (lang, caption) SELECT * FROM unnest($1::text[], $2::text[])',
    [rows.flatMap(() => ['en', 'ko']), rows.flatMap((r) => [r.english, r.korean])]);

  const truth = Object.fromEntries(rows.map((r) => [r.file, r.english]));
  console.log('image -> nearest captions (the image\'s own caption in brackets):');
  for (const { file } of rows.slice(0, 4)) {
    const { rows: hits } = await client.query(
      `SELECT lang, caption FROM js_captions
       ORDER BY emb <=> (SELECT emb FROM js_pictures WHERE file = $1) LIMIT 3`, [file]);
    console.log(`  ${file} [${truth[file]}]: ${hits.map((h) => `${h.caption} (${h.lang})`).join(' | ')}`);
  }

  console.log('\nrecipe -> nearest images:');
  for (const [name, recipe] of Object.entries(recipes)) {
    const { rows: hits } = await client.query(
      `WITH q AS MATERIALIZED (SELECT encode_text($1) AS e)
       SELECT file FROM js_pictures ORDER BY emb <=> (SELECT e FROM q) LIMIT 3`, [recipe]);
    console.log(`  ${name}: ${hits.map((h) => `${h.file} (${truth[h.file]})`).join(', ')}`);
  }
} finally {
  await client.end();
}
