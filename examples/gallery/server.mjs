// The gallery: a small image-search web app on crossmodal, with Node's own
// http server and pg.  Images are stored in one table whose embedding the
// database computes as each image is written (a generated encode_image
// column) and indexes with crossmodal_hnsw; the page searches them by text,
// shows an image's nearest neighbours and its zero-shot labels.
//
//   cd examples/gallery && npm install && npm start     # then open http://127.0.0.1:8080/
//
// Database: the usual libpq environment (PGHOST, PGPORT, PGDATABASE, PGUSER...).
// Settings (environment): GALLERY_PORT (8080), GALLERY_HOST (127.0.0.1),
// GALLERY_MODEL (the server's crossmodal.default_model), GALLERY_TABLE
// (gallery_images).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
const MAX_IMAGE_BYTES = 8 * 1024 * 1024;
const MAX_LABELS = 50;
const STATIC = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};
// The candidate labels the page starts with; the user can edit them.
export const DEFAULT_LABELS = [
  'an animal', 'a face', 'food', 'a clock', 'weather', 'a building', 'a heart', 'an object', 'a vehicle', 'a plant',
];

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The type of an image from its first bytes (what the encoders accept).
function imageType(buf) {
  if (buf.length >= 8 && buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'image/jpeg';
  if (buf.length >= 6 && (buf.subarray(0, 6).toString('latin1') === 'GIF87a' || buf.subarray(0, 6).toString('latin1') === 'GIF89a')) return 'image/gif';
  if (buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d) return 'image/bmp';
  if (buf.length >= 12 && buf.subarray(0, 4).toString('latin1') === 'RIFF' && buf.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return null;
}

// The request body, refused past limit bytes (the rest is read and dropped,
// so that the client gets the answer rather than a reset connection).
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `an image may have at most ${limit} bytes`);
    if (Number(req.headers['content-length']) > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => (size > limit ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function intParam(url, name, def, max) {
  const v = url.searchParams.get(name);
  if (v === null) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new HttpError(400, `${name} must be an integer from 1 to ${max}`);
  return n;
}

function idParam(s) {
  if (!/^[0-9]{1,18}$/.test(s)) throw new HttpError(404, 'no such image');
  return s;
}

export async function createGallery({ pool = new pg.Pool(), model = process.env.GALLERY_MODEL,
  table = process.env.GALLERY_TABLE || 'gallery_images', reset = false } = {}) {
  const client = await pool.connect();
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS crossmodal');
    if (!model) {
      // The extension's settings exist once its library is loaded in the session.
      ({ rows: [{ model }] } = await client.query(
        "SELECT current_setting('crossmodal.default_model') AS model FROM (SELECT '[0]'::embedding) AS load"));
    }
    const t = pg.escapeIdentifier(table);
    if (reset) await client.query(`DROP TABLE IF EXISTS ${t}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${t} (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        mime text NOT NULL,
        data bytea NOT NULL,
        added timestamptz NOT NULL DEFAULT now(),
        emb embedding GENERATED ALWAYS AS (encode_image(${pg.escapeLiteral(model)}, data)) STORED)`);
    await client.query(`CREATE INDEX IF NOT EXISTS ${pg.escapeIdentifier(`${table}_emb_idx`)}
        ON ${t} USING crossmodal_hnsw (emb embedding_cosine_ops)`);
  } finally {
    client.release();
  }
  const t = pg.escapeIdentifier(table);
  const m = pg.escapeLiteral(model);

  const api = {
    // POST /api/images?name=NAME, the body is the image file.
    async upload(req, url) {
      const name = (url.searchParams.get('name') || 'image').slice(0, 200);
      const data = await readBody(req, MAX_IMAGE_BYTES);
      const mime = imageType(data);
      if (!mime) throw new HttpError(415, `${name}: not a PNG, JPEG, GIF, BMP or WebP image`);
      const { rows: [row] } = await pool.query(
        `INSERT INTO ${t} (name, mime, data) VALUES ($1, $2, $3) RETURNING id, name`, [name, mime, data]);
      return row;
    },
    async list(url) {
      const limit = intParam(url, 'limit', 200, 1000);
      const { rows } = await pool.query(`SELECT id, name FROM ${t} ORDER BY id DESC LIMIT $1`, [limit]);
      return rows;
    },
    // The query text is encoded once (the CTE), the index orders the rows.
    async search(url) {
      const q = (url.searchParams.get('q') || '').trim();
      if (!q) throw new HttpError(400, 'q (the text to search for) is missing');
      const k = intParam(url, 'k', 12, 100);
      const { rows } = await pool.query(
        `WITH q AS MATERIALIZED (SELECT encode_text(${m}, $1) AS e)
         SELECT id, name, (emb <=> (SELECT e FROM q))::real AS distance
         FROM ${t} ORDER BY emb <=> (SELECT e FROM q) LIMIT $2`, [q, k]);
      return rows;
    },
    async neighbours(id, url) {
      const k = intParam(url, 'k', 6, 100);
      const { rows } = await pool.query(
        `WITH me AS MATERIALIZED (SELECT emb FROM ${t} WHERE id = $1)
         SELECT id, name, (emb <=> (SELECT emb FROM me))::real AS distance
         FROM ${t} WHERE id <> $1 AND EXISTS (SELECT FROM me)
         ORDER BY emb <=> (SELECT emb FROM me) LIMIT $2`, [id, k]);
      if (rows.length === 0 && (await pool.query(`SELECT FROM ${t} WHERE id = $1`, [id])).rowCount === 0) {
        throw new HttpError(404, 'no such image');
      }
      return rows;
    },
    // GET /api/images/ID/labels?labels=a|b|c&k=5: the softmax over all labels.
    async labels(id, url) {
      const given = url.searchParams.get('labels');
      const labels = (given === null ? DEFAULT_LABELS : given.split('|')).map((s) => s.trim()).filter(Boolean);
      if (labels.length === 0 || labels.length > MAX_LABELS) throw new HttpError(400, `give 1 to ${MAX_LABELS} labels`);
      const k = intParam(url, 'k', 5, MAX_LABELS);
      const { rows } = await pool.query(
        `SELECT l.label, l.score FROM ${t} i, image_labels(${m}, i.data, $2::text[], $3) l
         WHERE i.id = $1 ORDER BY l.score DESC`, [id, labels, k]);
      if (rows.length === 0) throw new HttpError(404, 'no such image');
      return rows;
    },
    async data(id, res) {
      const { rows } = await pool.query(`SELECT mime, data FROM ${t} WHERE id = $1`, [id]);
      if (rows.length === 0) throw new HttpError(404, 'no such image');
      res.writeHead(200, { 'Content-Type': rows[0].mime, 'Cache-Control': 'max-age=3600' });
      res.end(rows[0].data);
    },
  };

  async function route(req, res) {
    const url = new URL(req.url, 'http://gallery');
    const parts = url.pathname.split('/').filter(Boolean);
    if (req.method === 'GET' && STATIC[url.pathname]) {
      const [file, type] = STATIC[url.pathname];
      res.writeHead(200, { 'Content-Type': type });
      res.end(fs.readFileSync(path.join(here, 'public', file)));
      return;
    }
    let result;
    if (parts[0] !== 'api') throw new HttpError(404, 'not found');
    if (req.method === 'POST' && url.pathname === '/api/images') result = await api.upload(req, url);
    else if (req.method === 'GET' && url.pathname === '/api/images') result = await api.list(url);
    else if (req.method === 'GET' && url.pathname === '/api/search') result = await api.search(url);
    else if (req.method === 'GET' && url.pathname === '/api/labels') result = DEFAULT_LABELS;
    else if (req.method === 'GET' && parts[1] === 'images' && parts.length === 4) {
      const id = idParam(parts[2]);
      if (parts[3] === 'data') return api.data(id, res);
      if (parts[3] === 'neighbours') result = await api.neighbours(id, url);
      else if (parts[3] === 'labels') result = await api.labels(id, url);
      else throw new HttpError(404, 'not found');
    } else throw new HttpError(404, 'not found');
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(result));
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err) => {
      // Database errors: an image the encoder cannot decode is the client's
      // fault (22P02), an oversized one too (54000); anything else is ours.
      let status = err.status || 500;
      let message = err.message;
      if (err.code === '22P02' || err.code === '54000') status = 422;
      else if (!err.status) console.error(err);
      if (status === 500) message = 'internal error';
      if (!res.headersSent) {
        res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify({ error: message }));
      }
    });
  });
  return { server, pool, model, table };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.GALLERY_PORT || 8080);
  const host = process.env.GALLERY_HOST || '127.0.0.1';
  const { server, model, table } = await createGallery();
  server.listen(port, host, () => console.log(`gallery on http://${host}:${port}/ (model ${model}, table ${table})`));
}
