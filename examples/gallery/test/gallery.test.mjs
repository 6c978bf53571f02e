// End-to-end test of the gallery in a real headless browser: Debian's
// chromium driven by playwright-core.  It uploads sample images (and one file
// that is not an image), searches by English and Korean text, opens an image
// for its nearest neighbours and zero-shot labels, and checks that what the
// page shows is what the database answers to the same questions (exact
// scans).  Last, it takes the screenshot the README shows.
//
// Needs the libpq environment of a database with the extension installable
// (examples/run.sh gallery starts a throwaway cluster), and chromium at
// $CHROMIUM (default /usr/bin/chromium).  Writes the screenshot to
// $GALLERY_SCREENSHOT (default examples/gallery/screenshot.png).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { createGallery, DEFAULT_LABELS } from '../server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const screenshot = process.env.GALLERY_SCREENSHOT ?? path.resolve(here, '..', 'screenshot.png');
const table = 'gallery_browser_test';
const UPLOADS = 16;

let gallery;
let browser;
let page;
let base;
let samples;
const statusErrors = [];

before(async () => {
  gallery = await createGallery({ table, reset: true });
  await new Promise((resolve) => gallery.server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${gallery.server.address().port}`;
  const dir = process.env.GALLERY_SAMPLES ?? path.join(repo, 'models', gallery.model, 'samples');
  const [header, ...lines] = fs.readFileSync(path.join(dir, 'captions.tsv'), 'utf8').trim().split('\n');
  const cols = header.split('\t');
  samples = lines.map((line) => Object.fromEntries(line.split('\t').map((v, i) => [cols[i], v])))
    .map((s) => ({ ...s, path: path.join(dir, s.file) }));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // No sandbox (the tests run as root in CI), no GPU, and none of the
    // background connections a closed network would refuse.
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.on('pageerror', (err) => statusErrors.push(err.message));
  await page.goto(base);
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => gallery?.server.close(resolve));
  await gallery?.pool.end();
});

// The names and distances a grid shows.
async function grid(selector) {
  return page.$$eval(`${selector} li`, (lis) => lis.map((li) => ({
    name: li.dataset.name,
    distance: li.querySelector('.distance') ? Number(li.querySelector('.distance').textContent) : null,
  })));
}

// The same question asked of the database directly, by an exact scan.
async function exact(sql, params) {
  const client = await gallery.pool.connect();
  try {
    await client.query('SET enable_indexscan = off; SET enable_bitmapscan = off');
    return (await client.query(sql, params)).rows;
  } finally {
    await client.query('RESET ALL');
    client.release();
  }
}

function ascending(values) {
  return values.every((v, i) => i === 0 || values[i - 1] <= v);
}

test('uploads images, and refuses a file that is not one', async () => {
  const bogus = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'gallery-')), 'notes.png');
  fs.writeFileSync(bogus, 'not an image at all');
  await page.setInputFiles('#upload', [...samples.slice(0, UPLOADS).map((s) => s.path), bogus]);
  await page.waitForFunction((n) => document.querySelector('#status').textContent.startsWith(`uploaded ${n} of ${n + 1}`), UPLOADS);
  assert.match(await page.textContent('#status'), /notes\.png: not a PNG, JPEG, GIF, BMP or WebP image/);
  assert.equal(await page.getAttribute('#status', 'class'), 'error');
  const shown = await grid('#grid');
  assert.equal(shown.length, UPLOADS);
  assert.deepEqual(shown.map((s) => s.name).sort(), samples.slice(0, UPLOADS).map((s) => s.file).sort());
  assert.equal(await page.textContent('#grid-title'), `All images (${UPLOADS})`);
  // Every image the page shows loads (they load after the grid is drawn: wait for them to finish first).
  await page.waitForFunction(() => [...document.querySelectorAll('#grid img')].every((i) => i.complete));
  const broken = await page.$$eval('#grid img', (imgs) => imgs.filter((i) => i.naturalWidth === 0).length);
  assert.equal(broken, 0);
});

test('the API refuses what it cannot store or find', async () => {
  const post = (name, body) => fetch(`${base}/api/images?name=${name}`, { method: 'POST', body });
  let res = await post('big.png', Buffer.alloc(9 * 1024 * 1024));
  assert.equal(res.status, 413);
  assert.match((await res.json()).error, /at most 8388608 bytes/);
  // A PNG signature and nothing readable after it: the encoder refuses it (22P02).
  res = await post('broken.png', Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(100, 7)]));
  assert.equal(res.status, 422);
  assert.ok((await res.json()).error.length > 0, 'with the decoder\'s reason');
  for (const path of ['/api/images/999999/neighbours', '/api/images/abc/labels', '/api/nothing']) {
    assert.equal((await fetch(base + path)).status, 404, path);
  }
  assert.equal((await fetch(`${base}/api/search?q=cat&k=0`)).status, 400);
  assert.equal((await fetch(`${base}/api/images`).then((r) => r.json())).length, UPLOADS, 'nothing was stored');
});

for (const [lang, pick] of [['English', (s) => s.english], ['Korean', (s) => s.korean]]) {
  test(`searches by ${lang} text`, async () => {
    const q = pick(samples[3]);
    await page.fill('#query', q);
    await page.click('#search-form button[type=submit]');
    await page.waitForFunction((t) => document.querySelector('#grid-title').textContent === `Search: ${t}`, q);
    const shown = await grid('#grid');
    assert.equal(shown.length, 8);
    assert.ok(ascending(shown.map((s) => s.distance)), 'distances ascend');
    const want = await exact(
      `SELECT name, (emb <=> encode_text($1, $2))::real AS d FROM ${table} ORDER BY emb <=> encode_text($1, $2) LIMIT 8`,
      [gallery.model, q]);
    assert.deepEqual(shown.map((s) => s.name), want.map((r) => r.name));
    assert.deepEqual(shown.map((s) => s.distance), want.map((r) => Number(r.d.toFixed(3))));
  });
}

test('an image shows its nearest neighbours and zero-shot labels', async () => {
  const chosen = samples[5].file;
  await page.click('#show-all');
  await page.waitForFunction((n) => document.querySelectorAll('#grid li').length === n, UPLOADS);
  await page.click(`#grid li[data-name="${chosen}"]`);
  await page.waitForFunction(() => document.querySelectorAll('#label-scores li').length === 5);
  assert.equal(await page.textContent('#detail-name'), chosen);
  assert.equal(await page.getAttribute('#grid li.selected', 'data-name'), chosen);

  const near = await grid('#neighbours');
  const wantNear = await exact(
    `SELECT name, (emb <=> (SELECT emb FROM ${table} WHERE name = $1))::real AS d FROM ${table}
     WHERE name <> $1 ORDER BY emb <=> (SELECT emb FROM ${table} WHERE name = $1) LIMIT 6`, [chosen]);
  assert.deepEqual(near.map((s) => s.name), wantNear.map((r) => r.name));
  assert.ok(ascending(near.map((s) => s.distance)), 'neighbour distances ascend');

  const labels = async () => page.$$eval('#label-scores li', (lis) => lis.map((li) => [li.dataset.label, Number(li.dataset.score)]));
  const wantLabels = async (candidates) => (await exact(
    `SELECT l.label, l.score FROM ${table} i, image_labels($1, i.data, $2::text[], 5) l WHERE i.name = $3 ORDER BY l.score DESC`,
    [gallery.model, candidates, chosen])).map((r) => [r.label, r.score]);
  let shown = await labels();
  assert.deepEqual(shown.map(([l]) => l), (await wantLabels(DEFAULT_LABELS)).map(([l]) => l));
  assert.ok(ascending(shown.map(([, s]) => -s)), 'label scores descend');
  for (const [, s] of shown) assert.ok(s > 0 && s <= 1);

  // The candidates are the page's to change: the captions of six images.
  const captions = samples.slice(2, 8).map((s) => s.english);
  await page.fill('#labels', captions.join(' | '));
  await page.click('#labels-form button');
  await page.waitForFunction((first) => document.querySelector('#label-scores li')?.dataset.label !== first, shown[0][0]);
  shown = await labels();
  const want = await wantLabels(captions);
  assert.deepEqual(shown.map(([l]) => l), want.map(([l]) => l));
  shown.forEach(([, s], i) => assert.ok(Math.abs(s - want[i][1]) < 1e-6));

  // A neighbour is clickable in turn.
  await page.click(`#neighbours li[data-name="${near[0].name}"]`);
  await page.waitForFunction((n) => document.querySelector('#detail-name').textContent === n, near[0].name);
});

test('takes the README screenshot', async () => {
  await page.fill('#query', samples[3].english);
  await page.click('#search-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#grid-title').textContent.startsWith('Search: '));
  await page.click('#grid li');   // the best hit
  await page.waitForFunction(() => document.querySelectorAll('#label-scores li').length > 0);
  await page.waitForFunction(() => [...document.images].every((i) => i.complete));
  await page.screenshot({ path: screenshot });
  assert.ok(fs.statSync(screenshot).size > 20000, 'the screenshot has content');
  assert.deepEqual(statusErrors, [], 'no script error on the page');
});

// After the screenshot: it adds an image the other tests do not expect.
test('takes a WebP image, as the encoder does', async () => {
  const file = path.resolve(here, '..', '..', '..', 'test', 'images', 'webp_lossy.webp');
  const res = await fetch(`${base}/api/images?name=photo.webp`, { method: 'POST', body: fs.readFileSync(file) });
  assert.equal(res.status, 200);
  const { id } = await res.json();
  const [row] = await exact(`SELECT mime, emb IS NOT NULL AS embedded FROM ${table} WHERE id = $1`, [id]);
  assert.deepEqual(row, { mime: 'image/webp', embedded: true });
  const img = await fetch(`${base}/api/images/${id}/data`);
  assert.equal(img.headers.get('content-type'), 'image/webp');
});
