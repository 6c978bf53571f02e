// The gallery page: upload, text search, an image's nearest neighbours and
// zero-shot labels, through the JSON API of server.mjs.
const $ = (id) => document.getElementById(id);
let selected = null;

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function tile(image, onClick) {
  const li = document.createElement('li');
  li.dataset.id = image.id;
  li.dataset.name = image.name;
  const img = document.createElement('img');
  img.src = `/api/images/${image.id}/data`;
  img.alt = image.name;
  const name = document.createElement('div');
  name.className = 'name';
  name.textContent = image.name;
  li.append(img, name);
  if (image.distance !== undefined) {
    const d = document.createElement('div');
    d.className = 'distance';
    d.textContent = image.distance.toFixed(3);
    li.append(d);
  }
  li.addEventListener('click', () => onClick(image));
  return li;
}

function showGrid(title, images) {
  $('grid-title').textContent = title;
  $('grid').replaceChildren(...images.map((im) => tile(im, showDetail)));
  for (const li of $('grid').children) li.classList.toggle('selected', li.dataset.id === String(selected?.id));
}

async function showAll() {
  const images = await api('/api/images');
  showGrid(`All images (${images.length})`, images);
}

async function showLabels() {
  const labels = $('labels').value.split('|').map((s) => s.trim()).filter(Boolean);
  const scores = await api(`/api/images/${selected.id}/labels?k=5&labels=${encodeURIComponent(labels.join('|'))}`);
  $('label-scores').replaceChildren(...scores.map((s) => {
    const li = document.createElement('li');
    li.dataset.label = s.label;
    li.dataset.score = s.score;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.round(s.score * 120)}px`;
    li.append(`${s.label} ${s.score.toFixed(3)}`, bar);
    return li;
  }));
}

async function showDetail(image) {
  selected = image;
  $('detail').hidden = false;
  $('detail-name').textContent = image.name;
  $('detail-image').src = `/api/images/${image.id}/data`;
  $('detail-image').alt = image.name;
  for (const li of $('grid').children) li.classList.toggle('selected', li.dataset.id === String(image.id));
  try {
    const near = await api(`/api/images/${image.id}/neighbours?k=6`);
    $('neighbours').replaceChildren(...near.map((im) => tile(im, showDetail)));
    await showLabels();
    status(`${image.name}: ${near.length} nearest neighbours`);
  } catch (err) {
    status(err.message, true);
  }
}

$('upload').addEventListener('change', async (event) => {
  const files = [...event.target.files];
  let done = 0;
  const failed = [];
  for (const file of files) {
    status(`uploading ${file.name} (${done + 1} of ${files.length})`);
    try {
      await api(`/api/images?name=${encodeURIComponent(file.name)}`, { method: 'POST', body: file });
      done++;
    } catch (err) {
      failed.push(`${file.name}: ${err.message}`);
    }
  }
  event.target.value = '';
  await showAll();
  if (failed.length) status(`uploaded ${done} of ${files.length}; ${failed.join('; ')}`, true);
  else status(`uploaded ${done} image${done === 1 ? '' : 's'}`);
});

$('search-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const q = $('query').value.trim();
  if (!q) return showAll();
  try {
    showGrid(`Search: ${q}`, await api(`/api/search?k=8&q=${encodeURIComponent(q)}`));
    status(`nearest images to "${q}"`);
  } catch (err) {
    status(err.message, true);
  }
});

$('show-all').addEventListener('click', () => showAll());
$('labels-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (selected) showLabels().catch((err) => status(err.message, true));
});

api('/api/labels').then((labels) => { $('labels').value = labels.join(' | '); });
showAll().catch((err) => status(err.message, true));
