/**
 * The console's script: one hand-written ES module, no framework and no build step. It is held as a raw
 * string, so it must contain no backtick and no dollar-brace (test/console-assets.test.ts checks, and
 * that it parses). It calls only the public /v1 and /admin routes of the page's own origin, and only through
 * the operation table generated from /openapi.json (./operations.ts, by scripts/gen-console-client.ts):
 * call('operationId', params, opts). test/console-client.test.ts fails when the table and the API differ or
 * when the script names an operation, or a /v1 or /admin path, outside it.
 */
import { CONSOLE_OPERATIONS_JS } from './operations.js';

export const CONSOLE_JS = String.raw`// VICReg console — talks to /v1 and /admin on this origin only.
` + CONSOLE_OPERATIONS_JS + String.raw`
const $ = (sel, root) => (root || document).querySelector(sel);
const SVG_NS = 'http://www.w3.org/2000/svg';

/** Element builder: h('div', {class: 'x', onclick: f}, child, 'text'). Text is never parsed as HTML. */
function h(tag, attrs, ...kids) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const clear = (el) => { el.replaceChildren(); return el; };
const enc = encodeURIComponent;
const fmt = (x, d) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d === undefined ? 3 : d) : '—');
const pct = (x) => (typeof x === 'number' && Number.isFinite(x) ? (100 * x).toFixed(1) + '%' : '—');
function say(el, text, kind) {
  el.textContent = text || '';
  el.classList.toggle('error', kind === 'error');
  el.classList.toggle('ok', kind === 'ok');
}
function duration(s) {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}

// ---- API client ------------------------------------------------------------------------------------
/** Secrets live in this object only: never in storage, cookies or the URL. */
const auth = { admin: '', key: '' };

class ApiError extends Error {
  constructor(status, message, problem) { super(message); this.status = status; this.problem = problem; }
}

/**
 * The URL of an operation of /openapi.json: {name} path parameters come from params, the rest must be the
 * operation's declared query parameters (empty values are left out).
 */
function href(operationId, params) {
  const op = OPERATIONS[operationId];
  if (!op) throw new Error('the API has no operation ' + operationId);
  params = params || {};
  const used = new Set();
  const path = op[1].replace(/\{([^}]+)\}/g, (m, name) => {
    used.add(name);
    if (params[name] === undefined || params[name] === null || params[name] === '') throw new Error(operationId + ': path parameter ' + name + ' is missing');
    return enc(params[name]);
  });
  const q = [];
  for (const [k, v] of Object.entries(params)) {
    if (used.has(k)) continue;
    if (!op[2].includes(k)) throw new Error(operationId + ' has no query parameter ' + k);
    if (v !== undefined && v !== null && v !== '') q.push(enc(k) + '=' + enc(v));
  }
  return q.length ? path + '?' + q.join('&') : path;
}

async function call(operationId, params, opts) {
  opts = opts || {};
  const method = OPERATIONS[operationId] ? OPERATIONS[operationId][0] : 'GET';
  const path = href(operationId, params);
  const headers = Object.assign({}, opts.headers);
  // Admin routes take the admin token; /v1 takes the API key when the server has keys on.
  if (opts.admin) { if (auth.admin) headers.Authorization = 'Bearer ' + auth.admin; }
  else if (auth.key) headers.Authorization = 'Bearer ' + auth.key;
  let body = opts.body;
  if (opts.json !== undefined) { body = JSON.stringify(opts.json); headers['Content-Type'] = 'application/json'; }
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal: opts.signal, credentials: 'same-origin' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'the API did not answer (' + (err && err.message ? err.message : err) + ')');
  }
  if (!res.ok) {
    let p = null;
    try { p = await res.json(); } catch (e) { /* not JSON */ }
    const msg = p && (p.detail || p.title) ? p.detail || p.title : res.status + ' ' + res.statusText;
    throw new ApiError(res.status, msg, p);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.blob();
}
const imageBody = (blob) => ({ body: blob, headers: { 'Content-Type': blob.type || 'application/octet-stream' } });
const api = {
  searchImage: (blob, k, label) => call('searchGallery', { k, label }, imageBody(blob)),
  searchId: (id, k, label) => call('searchGallery', {}, { json: { id, k, filter: label ? { label } : undefined } }),
  classify: (blob, method) => call('classifyImage', { method }, imageBody(blob)),
  list: (cursor, limit) => call('listImages', { cursor, limit }),
  map: (limit, label) => call('getGalleryMap', { limit, label }),
  content: (id) => call('getImageContent', { id }),
  add: (file, fields) => {
    const form = new FormData();
    form.append('image', file, file.name || 'image');
    for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== '') form.append(k, v);
    return call('addImage', {}, { body: form });
  },
  remove: (id) => call('deleteImage', { id }),
  models: () => call('listModels'),
  current: () => call('getCurrentModel'),
  retrain: (req) => call('queueRetrain', {}, { json: req, admin: true }),
  jobs: () => call('listJobs', {}, { admin: true }),
  job: (id) => call('getJob', { id }, { admin: true }),
  cancel: (id) => call('cancelJob', { id }, { admin: true }),
  activate: (version, force) => call('activateModel', { version }, { admin: true, json: force ? { force: true } : undefined }),
};

// ---- shared bits -------------------------------------------------------------------------------------
const knownLabels = new Set();
function noteLabels(labels) {
  let added = false;
  for (const l of labels) if (l && !knownLabels.has(l)) { knownLabels.add(l); added = true; }
  if (added) clear($('#labels')).append(...[...knownLabels].sort().map((l) => h('option', { value: l })));
}

/** Gallery thumbnails: small blobs are cached as object URLs (the map's hover reuses them). */
const thumbUrls = new Map();
function thumb(id, alt, cls) {
  const img = h('img', { alt: alt || '', class: cls || 'thumb', loading: 'lazy', decoding: 'async', width: 96, height: 96 });
  const cached = thumbUrls.get(id);
  if (cached || !auth.key) img.src = cached || href('getImageContent', { id });
  else api.content(id).then((b) => { cacheThumb(id, b); img.src = thumbUrls.get(id) || URL.createObjectURL(b); }).catch(() => { img.alt = 'image unavailable'; });
  return img;
}
function cacheThumb(id, blob) {
  if (blob.size <= 64 * 1024 && !thumbUrls.has(id)) thumbUrls.set(id, URL.createObjectURL(blob));
}

let servingVersion = null;
async function refreshModelBadge() {
  try {
    const m = await api.current();
    servingVersion = m.version;
    $('#model-version').textContent = m.version + ' · ' + m.indexSize + ' images';
  } catch (err) {
    $('#model-version').textContent = err.status === 503 ? 'none loaded yet' : 'unreachable';
  }
}

// ---- views -------------------------------------------------------------------------------------------
const views = ['search', 'gallery', 'map', 'training'];
const opened = new Set();
function show(name) {
  if (!views.includes(name)) name = 'search';
  for (const v of views) $('#view-' + v).hidden = v !== name;
  for (const a of document.querySelectorAll('nav a[data-view]')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const first = !opened.has(name);
  opened.add(name);
  if (name === 'gallery' && first) loadGallery();
  if (name === 'map') mapOpened();
  if (name === 'training' && first) { loadModels(); if (auth.admin) loadJobs(); }
}
window.addEventListener('hashchange', () => { show(location.hash.slice(1)); $('#main').focus({ preventScroll: true }); });

// ---- search ------------------------------------------------------------------------------------------
const SENDABLE = new Set(['image/jpeg', 'image/png', 'image/webp']);
/**
 * What goes over the wire: JPEG, PNG and WebP under 4 MB as they are (every runtime decodes them);
 * anything else the browser can decode (HEIC from a phone, a huge photo, BMP…) re-encoded here.
 */
async function sendable(file) {
  if (SENDABLE.has(file.type) && file.size <= 4 * 1024 * 1024) return file;
  try {
    const bmp = await createImageBitmap(file, { imageOrientation: 'from-image' });
    const scale = Math.min(1, 1024 / Math.max(bmp.width, bmp.height));
    const canvas = h('canvas', { width: Math.max(1, Math.round(bmp.width * scale)), height: Math.max(1, Math.round(bmp.height * scale)) });
    canvas.getContext('2d').drawImage(bmp, 0, 0, canvas.width, canvas.height);
    bmp.close();
    return await new Promise((resolve) => canvas.toBlob((b) => resolve(b || file), 'image/jpeg', 0.92));
  } catch (err) {
    return file; // the server may still know the format (AVIF, TIFF on Node)
  }
}

let searchSeq = 0;
let queryUrl = null;
/** Search with an image; fromId: the gallery id it came from (searched by id, so it is left out). */
async function runSearch(blob, fromId) {
  const seq = ++searchSeq;
  const status = $('#search-status');
  const k = Number($('#k').value);
  const label = $('#search-label').value.trim();
  say(status, fromId ? 'Searching from ' + fromId + '…' : 'Searching…');
  if (queryUrl) URL.revokeObjectURL(queryUrl);
  queryUrl = URL.createObjectURL(blob);
  $('#query-img').src = queryUrl;
  $('#query-img').alt = fromId ? 'Query: gallery image ' + fromId : 'The query image';
  const [s, knn, lin] = await Promise.allSettled([
    fromId ? api.searchId(fromId, k, label) : api.searchImage(blob, k, label),
    api.classify(blob, 'knn'),
    api.classify(blob, 'linear'),
  ]);
  if (seq !== searchSeq) return;
  $('#search-out').hidden = false;
  renderPreds($('#pred-knn'), knn);
  renderPreds($('#pred-linear'), lin);
  const versions = new Set([s, knn, lin].filter((r) => r.status === 'fulfilled').map((r) => r.value.model.version));
  $('#answered-by').textContent = versions.size ? [...versions].join(', ') : '—';
  const list = clear($('#results'));
  if (s.status === 'rejected') {
    say(status, 'Search failed: ' + s.reason.message, 'error');
    return;
  }
  const results = s.value.results;
  noteLabels(results.map((r) => r.label));
  list.append(...results.map((r, i) => h('li', {},
    h('button', { type: 'button', class: 'card', 'data-id': r.id, 'data-label': r.label || '', 'aria-label': 'Result ' + (i + 1) + ': ' + (r.label || 'unlabelled') + ', score ' + fmt(r.score) + ', id ' + r.id + '. Search from it.', onclick: () => searchFromGallery(r.id) },
      thumb(r.id, ''),
      h('span', { class: 'label', text: r.label || 'unlabelled' }),
      h('span', { class: 'score', text: fmt(r.score) }),
      h('span', { class: 'id', text: r.id })))));
  say(status, results.length ? results.length + ' nearest images' + (label ? ' labelled ' + label : '') + '.' : 'The gallery has no images' + (label ? ' labelled ' + label : '') + ' to compare with: add some in the Gallery view.', results.length ? 'ok' : undefined);
}

function renderPreds(ol, settled) {
  clear(ol);
  if (settled.status === 'rejected') {
    const e = settled.reason;
    ol.append(h('li', { class: 'muted', text: e.status === 409 || e.status === 503 ? e.message : 'unavailable: ' + e.message }));
    return;
  }
  const preds = settled.value.predictions.slice(0, 3);
  noteLabels(preds.map((p) => p.label));
  ol.append(...preds.map((p) => h('li', { 'data-label': p.label },
    h('span', { class: 'bar-label', text: p.label }),
    h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { class: 'fill', style: null })),
    h('span', { class: 'bar-value', text: pct(p.probability) }))));
  // Widths through the CSSOM (allowed by the CSP, unlike style attributes in markup).
  [...ol.querySelectorAll('.fill')].forEach((f, i) => { f.style.width = (100 * preds[i].probability).toFixed(1) + '%'; });
}

async function searchFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith('image/')) { say($('#search-status'), file.name + ' is not an image.', 'error'); return; }
  location.hash = '#search';
  try {
    await runSearch(await sendable(file));
  } catch (err) {
    say($('#search-status'), 'Search failed: ' + err.message, 'error');
  }
}

async function searchFromGallery(id) {
  if (location.hash !== '#search') location.hash = '#search';
  say($('#search-status'), 'Fetching ' + id + '…');
  try {
    const blob = await api.content(id);
    cacheThumb(id, blob);
    await runSearch(blob, id);
    $('#h-search').scrollIntoView({ block: 'start' });
  } catch (err) {
    say($('#search-status'), 'Search failed: ' + err.message, 'error');
  }
}

function wireSearch() {
  for (const sel of ['#pick', '#camera']) {
    $(sel).addEventListener('change', (e) => { searchFile(e.target.files[0]); e.target.value = ''; });
  }
  const drop = $('#drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = [...(e.dataTransfer ? e.dataTransfer.files : [])].find((x) => x.type.startsWith('image/'));
    if (f) searchFile(f); else say($('#search-status'), 'Drop an image file.', 'error');
  });
  document.addEventListener('paste', (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
    const item = [...(e.clipboardData ? e.clipboardData.items : [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    if (item) { e.preventDefault(); searchFile(item.getAsFile()); }
  });
}

// ---- gallery -----------------------------------------------------------------------------------------
const gal = { cursors: [undefined], page: 0, next: null };

/** One page; with a label filter, pages are scanned until enough items carry that label. */
async function galleryPage(cursor, size, label) {
  if (!label) return api.list(cursor, size);
  const items = [];
  let c = cursor;
  for (;;) {
    const p = await api.list(c, 500);
    for (const it of p.items) {
      if (it.label !== label) continue;
      items.push(it);
      if (items.length === size) return { items, nextCursor: it.id };
    }
    if (!p.nextCursor) return { items, nextCursor: null };
    c = p.nextCursor;
  }
}

async function loadGallery() {
  const status = $('#gal-status');
  const size = Number($('#gal-size').value);
  const label = $('#gal-label').value.trim();
  say(status, 'Loading…');
  try {
    const page = await galleryPage(gal.cursors[gal.page], size, label);
    gal.next = page.nextCursor;
    noteLabels(page.items.map((it) => it.label));
    const grid = clear($('#gal-grid'));
    grid.append(...page.items.map(galleryCard));
    $('#gal-prev').disabled = gal.page === 0;
    $('#gal-next').disabled = !gal.next;
    $('#gal-page').textContent = 'page ' + (gal.page + 1);
    say(status, page.items.length ? page.items.length + ' images on this page' + (label ? ' labelled ' + label : '') + '.' : gal.page === 0 ? 'No images' + (label ? ' labelled ' + label : '') + ' yet. Add some above.' : 'No more images.');
  } catch (err) {
    say(status, 'Could not list the gallery: ' + err.message, 'error');
  }
}

function galleryCard(it) {
  const meta = it.metadata && Object.keys(it.metadata).length ? JSON.stringify(it.metadata) : '';
  return h('li', { class: 'card', 'data-id': it.id },
    thumb(it.id, (it.label || 'unlabelled') + ' ' + it.id),
    h('span', { class: 'label', text: it.label || 'unlabelled' }),
    h('span', { class: 'id', text: it.id }),
    meta ? h('span', { class: 'meta', title: meta, text: meta }) : null,
    it.indexed ? null : h('span', { class: 'badge', text: 'not indexed yet' }),
    h('span', { class: 'actions' },
      h('button', { type: 'button', class: 'btn small', 'aria-label': 'Search from ' + it.id, onclick: () => searchFromGallery(it.id) }, 'Search'),
      h('button', { type: 'button', class: 'btn small danger', 'aria-label': 'Delete ' + it.id, onclick: () => deleteItem(it.id) }, 'Delete')));
}

async function deleteItem(id) {
  if (!confirm('Delete ' + id + ' from the gallery?')) return;
  try {
    await api.remove(id);
    mapCache = null;
    await loadGallery();
    say($('#gal-status'), 'Deleted ' + id + '.', 'ok');
    refreshModelBadge();
  } catch (err) {
    say($('#gal-status'), 'Could not delete ' + id + ': ' + err.message, 'error');
  }
}

async function uploadImages(e) {
  e.preventDefault();
  const status = $('#add-status');
  const files = [...$('#add-files').files];
  const label = $('#add-label').value.trim();
  const id = $('#add-id').value.trim();
  const metaText = $('#add-meta').value.trim();
  if (metaText) {
    try {
      const m = JSON.parse(metaText);
      if (!m || typeof m !== 'object' || Array.isArray(m)) throw new Error('not an object');
    } catch (err) {
      say(status, 'Metadata must be a JSON object (' + err.message + ').', 'error');
      $('#add-meta').focus();
      return;
    }
  }
  let done = 0;
  const failed = [];
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      const f = files[i];
      try {
        await api.add(await sendable(f), { label, metadata: metaText, id: id ? (files.length > 1 ? id + '-' + (i + 1) : id) : undefined });
        done++;
      } catch (err) {
        failed.push(f.name + ': ' + err.message);
      }
      say(status, 'Uploaded ' + done + ' of ' + files.length + '…');
    }
  };
  await Promise.all([worker(), worker(), worker()]);
  say(status, 'Added ' + done + ' of ' + files.length + ' images.' + (failed.length ? ' Failed: ' + failed.join('; ') : ''), failed.length ? 'error' : 'ok');
  if (done) {
    noteLabels([label]);
    mapCache = null;
    $('#add-form').reset();
    gal.cursors = [undefined]; gal.page = 0;
    await loadGallery();
    refreshModelBadge();
  }
}

function wireGallery() {
  $('#api-key').addEventListener('change', (e) => { auth.key = e.target.value.trim(); });
  $('#add-form').addEventListener('submit', uploadImages);
  const restart = () => { gal.cursors = [undefined]; gal.page = 0; loadGallery(); };
  $('#gal-label').addEventListener('change', restart);
  $('#gal-size').addEventListener('change', restart);
  $('#gal-refresh').addEventListener('click', restart);
  $('#gal-next').addEventListener('click', () => { if (!gal.next) return; gal.cursors[gal.page + 1] = gal.next; gal.page++; loadGallery(); });
  $('#gal-prev').addEventListener('click', () => { if (gal.page === 0) return; gal.page--; loadGallery(); });
}

// ---- embedding map -----------------------------------------------------------------------------------
const PALETTE = ['#1f77b4', '#d95f02', '#2ca02c', '#d62728', '#7b4fb3', '#8c564b', '#d4459b', '#5f6b6d', '#9a8f00', '#0e9aa7'];
/** Points the map asks for: the API's maximum (a larger gallery comes back as an even sample of it). */
const MAP_LIMIT = 5000;
let mapCache = null;
let mapBusy = false;

function mapOpened() {
  if (mapCache && mapCache.version === servingVersion) return;
  computeMap();
}

/** The server projects the serving model's gallery index (GET /v1/gallery/map); the page only draws it. */
async function computeMap() {
  if (mapBusy) return;
  mapBusy = true;
  const status = $('#map-status');
  const btn = $('#map-run');
  btn.disabled = true;
  try {
    say(status, 'Projecting the gallery…');
    const m = await api.map(MAP_LIMIT);
    const version = m.model.version;
    servingVersion = version;
    if (!m.points.length) { mapCache = null; say(status, 'The gallery is empty: add images in the Gallery view first.'); $('#map-wrap').hidden = true; return; }
    mapCache = { version, points: m.points, explained: m.explainedVariance };
    drawMap(mapCache);
    const sampled = m.total > m.points.length ? ' (an even sample of the ' + m.total + ' indexed)' : '';
    say(status, m.points.length + ' images under model ' + version + sampled + '; the two axes explain ' + pct(m.explainedVariance[0]) + ' and ' + pct(m.explainedVariance[1]) + ' of the variance.', 'ok');
  } catch (err) {
    say(status, (err.status === 503 ? 'No model serves yet: ' : 'Could not compute the map: ') + err.message, 'error');
  } finally {
    mapBusy = false;
    btn.disabled = false;
  }
}

function labelColours(points) {
  const labels = [...new Set(points.map((p) => p.label || ''))].sort((a, b) => (a === '') - (b === '') || a.localeCompare(b));
  const colours = new Map();
  labels.forEach((l, i) => colours.set(l, l === '' ? '#9aa0a6' : i < PALETTE.length ? PALETTE[i] : 'hsl(' + ((i * 47) % 360) + ' 65% 42%)'));
  return { labels, colours };
}

function drawMap(m) {
  const svg = clear($('#map'));
  const W = 640, H = 440, PAD = 16;
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('aria-label', 'Embedding map of ' + m.points.length + ' gallery images under model ' + m.version);
  const xs = m.points.map((p) => p.x), ys = m.points.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x) => PAD + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * PAD);
  const sy = (y) => H - PAD - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * PAD);
  const { labels, colours } = labelColours(m.points);
  noteLabels(labels);
  svg.append(h('svg:rect', { x: 0, y: 0, width: W, height: H, class: 'map-bg' }));
  const pts = m.points.map((p, i) => h('svg:circle', {
    class: 'pt', cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: m.points.length > 1500 ? 3 : 5,
    fill: colours.get(p.label || ''), 'data-id': p.id, 'data-label': p.label || '', tabindex: i === 0 ? 0 : -1, role: 'button',
    'aria-label': (p.label || 'unlabelled') + ', ' + p.id,
  }));
  svg.append(...pts);
  const legend = clear($('#map-legend'));
  legend.append(...labels.map((l) => {
    const count = m.points.filter((p) => (p.label || '') === l).length;
    return h('li', {}, h('button', { type: 'button', class: 'legend-item', 'aria-pressed': 'false', 'data-label': l, onclick: (e) => highlight(e.currentTarget, l) },
      h('span', { class: 'swatch', 'aria-hidden': 'true', 'data-colour': colours.get(l) }), (l || 'unlabelled') + ' (' + count + ')'));
  }));
  for (const s of legend.querySelectorAll('.swatch')) s.style.background = s.dataset.colour;
  $('#map-wrap').hidden = false;
  $('#map-help').hidden = false;
}

function highlight(button, label) {
  const on = button.getAttribute('aria-pressed') !== 'true';
  for (const b of document.querySelectorAll('.legend-item')) b.setAttribute('aria-pressed', String(on && b === button));
  for (const c of document.querySelectorAll('#map .pt')) c.classList.toggle('dim', on && (c.dataset.label || '') !== label);
}

function showTip(circle) {
  const tip = $('#map-tip');
  const id = circle.dataset.id;
  clear(tip).append(thumb(id, ''), h('span', { class: 'label', text: circle.dataset.label || 'unlabelled' }), h('span', { class: 'id', text: id }));
  const wrap = $('#map-wrap').getBoundingClientRect();
  const r = circle.getBoundingClientRect();
  const left = Math.min(r.left - wrap.left + 10, wrap.width - 130);
  const top = r.top - wrap.top > 140 ? r.top - wrap.top - 130 : r.top - wrap.top + 14;
  tip.style.left = Math.max(0, left) + 'px';
  tip.style.top = top + 'px';
  tip.hidden = false;
}

function wireMap() {
  const svg = $('#map');
  $('#map-run').addEventListener('click', () => { mapCache = null; computeMap(); });
  svg.addEventListener('pointerover', (e) => { if (e.target.classList.contains('pt')) showTip(e.target); });
  svg.addEventListener('pointerleave', () => { $('#map-tip').hidden = true; });
  svg.addEventListener('focusin', (e) => { if (e.target.classList.contains('pt')) showTip(e.target); });
  svg.addEventListener('focusout', () => { $('#map-tip').hidden = true; });
  svg.addEventListener('click', (e) => { if (e.target.classList.contains('pt')) searchFromGallery(e.target.dataset.id); });
  svg.addEventListener('keydown', (e) => {
    const pts = [...svg.querySelectorAll('.pt')];
    const i = pts.indexOf(document.activeElement);
    if (i < 0) return;
    let j = -1;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') j = (i + 1) % pts.length;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') j = (i - 1 + pts.length) % pts.length;
    else if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); searchFromGallery(pts[i].dataset.id); return; }
    if (j < 0) return;
    e.preventDefault();
    pts[i].setAttribute('tabindex', '-1');
    pts[j].setAttribute('tabindex', '0');
    pts[j].focus();
  });
}

// ---- training ----------------------------------------------------------------------------------------
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
let watched = null;
let pollTimer = null;

async function useToken(e) {
  e.preventDefault();
  auth.admin = $('#admin-token').value.trim();
  const status = $('#token-status');
  if (!auth.admin) { say(status, 'No token: admin actions are off.'); return; }
  try {
    await loadJobs(true);
    say(status, 'Token accepted (kept in this page’s memory only).', 'ok');
    loadModels();
  } catch (err) {
    say(status, err.status === 401 ? 'Wrong token.' : err.status === 503 ? 'Admin is disabled on this server (no ADMIN_TOKEN).' : err.message, 'error');
  }
}

function needToken(statusEl) {
  if (auth.admin) return false;
  say(statusEl, 'Enter the admin token above first.', 'error');
  $('#admin-token').focus();
  return true;
}

function numberField(sel) {
  const v = $(sel).value.trim();
  return v === '' ? undefined : Number(v);
}
const listField = (sel) => {
  const v = $(sel).value.trim();
  return v ? v.split(/[\s,]+/).filter(Boolean).map(Number) : undefined;
};

function retrainRequest() {
  const kind = $('#rt-kind').value;
  const req = { dataset: { kind } };
  if (kind === 'folder') req.dataset.path = $('#rt-path').value.trim();
  const limit = numberField('#rt-limit');
  if (limit !== undefined) req.dataset.limit = limit;
  const opt = { epochs: numberField('#rt-epochs'), maxSteps: numberField('#rt-steps'), batchSize: numberField('#rt-batch'), seed: numberField('#rt-seed') };
  for (const [k, v] of Object.entries(opt)) if (v !== undefined) req[k] = v;
  if ($('#rt-recipe').value) req.recipe = $('#rt-recipe').value;
  if ($('#rt-init').value) req.init = $('#rt-init').value;
  const widths = listField('#rt-widths'), blocks = listField('#rt-blocks'), expander = $('#rt-expander').value.trim();
  if (widths || blocks || expander) {
    req.model = {};
    if (widths || blocks) req.model.backbone = Object.assign({}, widths ? { widths } : {}, blocks ? { blocks } : {});
    if (expander) req.model.expander = expander;
  }
  if ($('#rt-force').checked) req.force = true;
  return req;
}

async function startRetrain(e) {
  e.preventDefault();
  const status = $('#rt-status');
  if (needToken(status)) return;
  try {
    const { job } = await api.retrain(retrainRequest());
    say(status, 'Queued job ' + job.id + '.', 'ok');
    watch(job.id);
    loadJobs();
  } catch (err) {
    const fields = err.problem && err.problem.errors ? ' (' + err.problem.errors.map((f) => f.field + ': ' + f.message).join('; ') + ')' : '';
    say(status, 'Could not start: ' + err.message + fields, 'error');
  }
}

async function loadJobs(rethrow) {
  const body = $('#jobs tbody');
  try {
    const { jobs } = await api.jobs();
    clear(body).append(...jobs.slice(0, 30).map((j) => h('tr', { 'data-job': j.id },
      h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => watch(j.id), 'aria-label': 'Watch job ' + j.id }, j.id)),
      h('td', {}, h('span', { class: 'state ' + j.state, text: j.state })),
      h('td', { text: new Date(j.createdAt).toLocaleString() }),
      h('td', { text: j.request.dataset.kind + (j.request.dataset.limit ? ' ×' + j.request.dataset.limit : '') }),
      h('td', { text: j.result ? j.result.version + (j.result.activated ? ' (active)' : j.result.published ? ' (published)' : '') : j.error ? j.error.slice(0, 80) : '' }))));
    if (!jobs.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No jobs yet.' })));
    if (!watched && jobs.length && !TERMINAL.includes(jobs[0].state)) watch(jobs[0].id);
  } catch (err) {
    if (rethrow) throw err;
    clear(body).append(h('tr', {}, h('td', { colspan: 5, class: 'error', text: err.message })));
  }
}

function watch(id) {
  watched = id;
  clearTimeout(pollTimer);
  $('#job-id').textContent = id;
  poll();
}

async function poll() {
  const id = watched;
  let job;
  try {
    job = await api.job(id);
  } catch (err) {
    if (id !== watched) return;
    say($('#job-state'), 'Could not read the job: ' + err.message, 'error');
    pollTimer = setTimeout(poll, 3000);
    return;
  }
  if (id !== watched) return;
  renderJob(job);
  if (!TERMINAL.includes(job.state)) pollTimer = setTimeout(poll, 1500);
  else {
    loadJobs();
    mapCache = null;
    // The API hot-loads a published model within its poll interval: look again a few times.
    for (const t of [0, 1500, 4000, 10000]) setTimeout(() => { loadModels(); refreshModelBadge(); }, t);
  }
}

function renderJob(job) {
  const stateEl = $('#job-state');
  stateEl.className = 'state ' + job.state;
  stateEl.textContent = job.state + (job.cancelRequested && !TERMINAL.includes(job.state) ? ' (cancelling)' : '') + (job.attempts > 1 ? ' · attempt ' + job.attempts : '');
  $('#job-cancel').hidden = TERMINAL.includes(job.state);
  const p = job.progress;
  const bar = $('#job-progress');
  bar.hidden = !p;
  const stats = clear($('#job-stats'));
  if (p) {
    bar.max = Math.max(1, p.totalSteps);
    bar.value = Math.min(p.step, bar.max);
    const rows = [
      ['Step', p.step + ' / ' + p.totalSteps + ' (epoch ' + Math.max(1, p.epoch) + ' of ' + (job.request.epochs || 3) + ')'],
      ['Loss', fmt(p.loss)], ['Invariance', fmt(p.invariance)], ['Variance', fmt(p.variance)], ['Covariance', fmt(p.covariance)],
      ['Learning rate', typeof p.lr === 'number' ? p.lr.toPrecision(3) : '—'],
      ['Std', fmt(p.std)], ['Effective rank', fmt(p.effectiveRank, 1)],
      ['Speed', fmt(p.imagesPerSec, 0) + ' img/s'], ['ETA', TERMINAL.includes(job.state) ? '—' : duration(p.etaSeconds)],
    ];
    if (job.backend) rows.push(['Backend', job.backend]);
    stats.append(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
  }
  drawLoss(p ? p.lossHistory : []);
  const result = $('#job-result');
  clear(result);
  if (job.result) {
    result.append('Model ', h('code', { text: job.result.version }), job.result.activated ? ' published and activated.' : job.result.published ? ' published, not activated' + (job.result.rejectedReason ? ': ' + job.result.rejectedReason : '') + '.' : ' not published.');
  }
  if (job.metrics) {
    const m = job.metrics;
    const prev = metric(m, ['current_val_knn_top1', 'current_knn_top1']);
    result.append(h('br'), 'kNN ' + pct(metric(m, METRICS.knn)) + ' · linear ' + pct(metric(m, METRICS.linear)) + (prev !== undefined ? ' · previous model kNN ' + pct(prev) : ''));
  }
  if (job.error) result.append(h('br'), h('span', { class: 'error', text: job.error }));
  $('#job-log').textContent = (job.logTail || []).slice(-20).join('\n');
}

function drawLoss(history) {
  const svg = clear($('#job-loss'));
  svg.toggleAttribute('hidden', history.length < 2); // an SVG element has no .hidden property
  if (history.length < 2) return;
  const W = 300, H = 90, P = 6;
  const s0 = history[0][0], s1 = history[history.length - 1][0];
  const ls = history.map((x) => x[1]).filter(Number.isFinite);
  const l0 = Math.min(...ls), l1 = Math.max(...ls);
  const pts = history.filter((x) => Number.isFinite(x[1])).map(([s, l]) => (P + ((s - s0) / (s1 - s0 || 1)) * (W - 2 * P)).toFixed(1) + ',' + (H - P - ((l - l0) / (l1 - l0 || 1)) * (H - 2 * P)).toFixed(1));
  svg.append(h('svg:polyline', { points: pts.join(' '), class: 'loss-line' }),
    h('svg:text', { x: P, y: 12, class: 'loss-text', text: 'loss ' + fmt(l1, 2) + ' → ' + fmt(ls[ls.length - 1], 2) }));
  svg.setAttribute('aria-label', 'Loss curve from ' + fmt(ls[0], 2) + ' to ' + fmt(ls[ls.length - 1], 2) + ' over ' + (s1 - s0) + ' steps');
}

async function cancelJob() {
  if (!watched || needToken($('#rt-status'))) return;
  try {
    await api.cancel(watched);
    poll();
  } catch (err) {
    say($('#rt-status'), 'Could not cancel: ' + err.message, 'error');
  }
}

/** Metric names, preferred first: held-out test figures, then the older flat names, then validation. */
const METRICS = {
  knn: ['test_knn_top1', 'knn_top1', 'val_knn_top1'],
  linear: ['test_linear_top1', 'linear_top1', 'val_linear_top1'],
  rawKnn: ['test_raw_knn_top1', 'raw_knn_top1'],
  rawLinear: ['test_raw_linear_top1', 'raw_linear_top1'],
};
const METRIC_COLUMNS = ['knn', 'linear', 'rawKnn', 'rawLinear'];
function metric(m, names) {
  for (const n of names) if (m && typeof m[n] === 'number') return m[n];
  return undefined;
}
async function loadModels() {
  const body = $('#models tbody');
  const status = $('#models-status');
  try {
    const { models } = await api.models();
    const best = {};
    for (const c of METRIC_COLUMNS) {
      const vals = models.map((m) => metric(m.metrics, METRICS[c])).filter((x) => x !== undefined);
      best[c] = vals.length > 1 && !c.startsWith('raw') ? Math.max(...vals) : undefined;
    }
    clear(body).append(...models.map((m) => {
      const mt = m.metrics || {};
      const cell = (c) => {
        const v = metric(mt, METRICS[c]);
        const name = METRICS[c].find((n) => typeof mt[n] === 'number');
        return h('td', { class: 'num' + (v !== undefined && v === best[c] ? ' best' : ''), title: name || null, text: pct(v) });
      };
      return h('tr', { 'data-version': m.version, class: m.state },
        h('th', { scope: 'row' }, h('code', { text: m.version }), m.latest ? h('span', { class: 'badge', text: 'latest' }) : null),
        h('td', {}, h('span', { class: 'state ' + m.state, text: m.state, title: m.error || '' })),
        METRIC_COLUMNS.map(cell),
        h('td', { class: 'num', text: fmt(mt.norm_std !== undefined ? mt.norm_std : mt.std) }),
        h('td', { class: 'num', text: fmt(mt.effective_rank, 1) }),
        h('td', {}, m.parent ? h('code', { text: m.parent }) : '—'),
        h('td', {}, m.latest ? '' : h('button', { type: 'button', class: 'btn small', 'aria-label': 'Activate ' + m.version, onclick: () => activate(m.version) }, 'Activate')));
    }));
    say(status, '');
  } catch (err) {
    say(status, 'Could not list models: ' + err.message, 'error');
  }
}

async function activate(version) {
  const status = $('#models-status');
  if (needToken(status)) return;
  try {
    await api.activate(version, false);
  } catch (err) {
    if (err.status !== 409 || !confirm(err.message + '\n\nActivate it anyway?')) { say(status, 'Not activated: ' + err.message, 'error'); return; }
    try { await api.activate(version, true); } catch (err2) { say(status, 'Not activated: ' + err2.message, 'error'); return; }
  }
  say(status, version + ' is now latest; it serves once loaded and checked.', 'ok');
  mapCache = null;
  setTimeout(() => { loadModels(); refreshModelBadge(); }, 1000);
}

function wireTraining() {
  $('#token-form').addEventListener('submit', useToken);
  $('#retrain-form').addEventListener('submit', startRetrain);
  $('#rt-kind').addEventListener('change', () => { $('#rt-path-wrap').hidden = $('#rt-kind').value !== 'folder'; });
  $('#job-cancel').addEventListener('click', cancelJob);
  $('#jobs-refresh').addEventListener('click', () => { if (!needToken($('#rt-status'))) loadJobs(); });
  $('#models-refresh').addEventListener('click', loadModels);
}

// ---- start -------------------------------------------------------------------------------------------
wireSearch();
wireGallery();
wireMap();
wireTraining();
refreshModelBadge().then(() => show(location.hash.slice(1)));
setInterval(refreshModelBadge, 30000);
document.documentElement.dataset.ready = 'true';
`;
