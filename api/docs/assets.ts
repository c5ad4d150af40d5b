/**
 * The API reference page: HTML shell, stylesheet and one hand-written ES module that renders
 * /openapi.json (operations by tag, parameters, bodies, responses, schemas, security) and sends requests
 * from a "Try it" form. The script is a raw string: no backtick and no dollar-brace inside.
 */
export const docsHtml = (paths: { js: string; css: string }) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>VICReg embeddings API — reference</title>
<link rel="stylesheet" href="${paths.css}">
<script type="module" src="${paths.js}"></script></head>
<body><a class="skip" href="#main">Skip to content</a>
<header class="top"><strong>VICReg embeddings API</strong> <span id="version" class="muted"></span>
<nav aria-label="Links"><a href="/">Console</a> · <a href="/openapi.json">openapi.json</a></nav></header>
<div class="layout"><nav id="toc" aria-label="Operations"></nav>
<main id="main" tabindex="-1"><p id="status">Loading <a href="/openapi.json">/openapi.json</a>…</p>
<noscript><p>This page needs JavaScript; the API is described in <a href="/openapi.json">/openapi.json</a>.</p></noscript></main></div>
</body></html>`;

export const DOCS_CSS = String.raw`:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #555e68; --line: #d0d7de; --panel: #f6f8fa; --accent: #0b4f8a; --focus: #b35c00;
  --get: #1a6b35; --post: #0b4f8a; --delete: #a4161a;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45; color: var(--fg); background: var(--bg);
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1419; --fg: #e6edf3; --muted: #a3adb8; --line: #39424c; --panel: #161c23; --accent: #5aa9f0; --focus: #ffb86b;
    --get: #56d364; --post: #5aa9f0; --delete: #ff8a8a; }
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .88em; overflow-wrap: anywhere; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .6rem; overflow: auto; max-height: 28rem; white-space: pre-wrap; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--accent); color: var(--bg); padding: .5rem 1rem; }
.skip:focus { left: .5rem; }
.top { display: flex; flex-wrap: wrap; gap: .3rem 1rem; align-items: baseline; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
.top nav { margin-left: auto; }
.muted { color: var(--muted); }
.layout { display: flex; align-items: flex-start; }
#toc { position: sticky; top: 0; max-height: 100vh; overflow: auto; width: 16rem; flex: none; padding: .5rem 1rem; border-right: 1px solid var(--line); font-size: .9rem; }
#toc h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: .8rem 0 .2rem; }
#toc ul { list-style: none; margin: 0; padding: 0; }
#toc a { display: block; padding: .15rem 0; text-decoration: none; overflow-wrap: anywhere; }
td:first-child { width: 6rem; }
#toc a:hover { text-decoration: underline; }
main { flex: 1; min-width: 0; max-width: 980px; padding: 1rem 1.5rem 4rem; }
main:focus { outline: none; }
.desc { white-space: pre-line; max-width: 75ch; }
.op { border: 1px solid var(--line); border-radius: 8px; margin: 1rem 0; padding: .2rem 1rem .8rem; }
.op h3 { display: flex; flex-wrap: wrap; gap: .5rem; align-items: baseline; font-size: 1rem; margin: .7rem 0 .3rem; }
.method { font-weight: 700; text-transform: uppercase; font-size: .8rem; letter-spacing: .04em; }
.m-get { color: var(--get); } .m-post, .m-put, .m-patch { color: var(--post); } .m-delete { color: var(--delete); }
.opid { font-size: .8rem; color: var(--muted); }
h4 { font-size: .9rem; margin: .8rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; vertical-align: top; border-top: 1px solid var(--line); padding: .3rem .4rem; }
ul.schema { list-style: none; margin: .1rem 0; padding-left: 1rem; border-left: 2px solid var(--line); font-size: .9rem; }
.req { color: var(--delete); font-size: .8rem; }
details.try { margin-top: .8rem; }
details.try summary { cursor: pointer; font-weight: 600; }
label { display: flex; flex-direction: column; gap: .15rem; font-size: .9rem; margin: .4rem 0; }
input, select, textarea, button { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--muted); border-radius: 6px; padding: .3rem .5rem; }
textarea { width: 100%; min-height: 6rem; }
button { cursor: pointer; background: var(--accent); color: var(--bg); border-color: var(--accent); font-weight: 600; }
.auth { border: 1px solid var(--line); border-radius: 8px; padding: .2rem 1rem .6rem; background: var(--panel); }
.result img { max-width: 100%; background: #fff; }
@media (max-width: 760px) { .layout { display: block; } #toc { position: static; width: auto; max-height: none; border-right: 0; border-bottom: 1px solid var(--line); } }
`;

export const DOCS_JS = String.raw`// API reference: renders /openapi.json; sends requests to this origin only.
const $ = (sel) => document.querySelector(sel);
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
/** Secrets for "Try it" live in this object only (never stored). */
const auth = {};
let doc = null;

function deref(s) {
  let seen = 0;
  while (s && s.$ref && seen++ < 20) {
    const parts = s.$ref.replace(/^#\//, '').split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    s = parts.reduce((o, p) => (o ? o[p] : undefined), doc);
  }
  return s || {};
}
function refName(s) { return s && s.$ref ? s.$ref.split('/').pop() : ''; }
function typeOf(s) {
  const r = deref(s);
  if (r.enum) return r.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (r.const !== undefined) return JSON.stringify(r.const);
  const t = Array.isArray(r.type) ? r.type.join(' | ') : r.type;
  if (t === 'array') return 'array of ' + typeOf(r.items || {});
  const alt = r.anyOf || r.oneOf;
  if (alt) return alt.map(typeOf).join(' | ');
  let out = (t || (r.properties ? 'object' : 'any')) + (r.format ? ' (' + r.format + ')' : '');
  const lim = [];
  if (r.minimum !== undefined) lim.push('≥ ' + r.minimum);
  if (r.maximum !== undefined) lim.push('≤ ' + r.maximum);
  if (r.minLength !== undefined) lim.push('min length ' + r.minLength);
  if (r.maxLength !== undefined) lim.push('max length ' + r.maxLength);
  if (r.maxItems !== undefined) lim.push('at most ' + r.maxItems + ' items');
  if (r.default !== undefined) lim.push('default ' + JSON.stringify(r.default));
  return out + (lim.length ? ', ' + lim.join(', ') : '');
}
/** A schema as a nested list of its properties (depth-limited: schemas may be recursive). */
function schemaTree(s, depth) {
  depth = depth || 0;
  let r = deref(s);
  if (r.type === 'array' && r.items) r = deref(r.items);
  const alts = r.anyOf || r.oneOf || r.allOf;
  if (!r.properties && alts && depth < 4) return h('div', {}, ...alts.map((a, i) => h('div', {}, h('span', { class: 'muted', text: (r.allOf ? 'all of ' : 'one of ') + '#' + (i + 1) + ' ' + refName(a) }), schemaTree(a, depth + 1))));
  if (!r.properties || depth > 4) return null;
  const required = new Set(r.required || []);
  return h('ul', { class: 'schema' }, ...Object.entries(r.properties).map(([name, p]) => {
    const d = deref(p);
    return h('li', {}, h('code', { text: name }), ' ', h('span', { class: 'muted', text: typeOf(p) }), required.has(name) ? h('span', { class: 'req', text: ' required' }) : null,
      d.description ? h('div', { class: 'desc', text: d.description }) : null, schemaTree(p, depth + 1));
  }));
}
function example(s, depth) {
  const r = deref(s);
  depth = depth || 0;
  if (r.example !== undefined) return r.example;
  if (r.default !== undefined) return r.default;
  if (r.enum) return r.enum[0];
  const alt = r.anyOf || r.oneOf;
  if (alt) return example(alt[0], depth + 1);
  const t = Array.isArray(r.type) ? r.type[0] : r.type;
  if (t === 'object' || r.properties) {
    const o = {};
    if (depth < 4) for (const [k, p] of Object.entries(r.properties || {})) if ((r.required || []).includes(k) || depth === 0) o[k] = example(p, depth + 1);
    return o;
  }
  if (t === 'array') return depth < 4 ? [example(r.items || {}, depth + 1)] : [];
  if (t === 'integer' || t === 'number') return r.minimum !== undefined ? r.minimum : 0;
  if (t === 'boolean') return false;
  return '';
}

function securityOf(op) { return op.security !== undefined ? op.security : doc.security || []; }
function securityText(op) {
  const sec = securityOf(op);
  if (!sec.length || sec.some((req) => Object.keys(req).length === 0)) return sec.length ? 'optional: ' + sec.filter((r) => Object.keys(r).length).map(reqText).join(' or ') : 'none (public)';
  return sec.map(reqText).join(' or ');
}
function reqText(req) { return Object.entries(req).map(([n, scopes]) => n + (scopes.length ? ' (' + scopes.join(', ') + ')' : '')).join(' + '); }

function paramsTable(params) {
  return h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'In', 'Type', 'Description'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, params.map((p) => h('tr', {}, h('td', {}, h('code', { text: p.name }), p.required ? h('span', { class: 'req', text: ' required' }) : null),
      h('td', { text: p.in }), h('td', { text: typeOf(p.schema || {}) }), h('td', { class: 'desc', text: p.description || deref(p.schema).description || '' })))));
}

function tryIt(path, method, op, params) {
  const inputs = params.map((p) => {
    const input = h('input', { name: p.name, 'data-in': p.in, required: p.required, placeholder: typeOf(p.schema || {}) });
    return h('label', {}, p.in + ' ' + p.name + (p.required ? ' (required)' : ''), input);
  });
  const content = (op.requestBody && deref(op.requestBody).content) || {};
  const types = Object.keys(content);
  const typeSel = types.length ? h('select', { 'aria-label': 'Request body type' }, types.map((t) => h('option', { value: t, text: t }))) : null;
  const json = h('textarea', { 'aria-label': 'JSON body', spellcheck: 'false', class: 'mono' });
  const file = h('input', { type: 'file', 'aria-label': 'Body file', accept: 'image/*' });
  const sync = () => {
    const t = typeSel ? typeSel.value : '';
    json.hidden = !t.includes('json');
    file.hidden = !(t.startsWith('image/') || t.includes('multipart'));
    if (!json.hidden && !json.value) json.value = JSON.stringify(example(content[t].schema || {}), null, 2);
  };
  if (typeSel) { typeSel.addEventListener('change', sync); sync(); }
  const out = h('div', { class: 'result', 'aria-live': 'polite' });
  const send = async (ev) => {
    ev.preventDefault();
    let url = path;
    const q = new URLSearchParams();
    for (const label of inputs) {
      const i = label.querySelector('input');
      if (i.dataset.in === 'path') url = url.replace('{' + i.name + '}', encodeURIComponent(i.value));
      else if (i.dataset.in === 'query' && i.value !== '') q.append(i.name, i.value);
    }
    if (String(q)) url += '?' + q;
    const headers = {};
    const schemes = (securityOf(op)[0] && Object.keys(securityOf(op)[0])) || [];
    const token = schemes.map((n) => auth[n]).find(Boolean);
    if (token) headers.Authorization = 'Bearer ' + token;
    let body;
    const t = typeSel ? typeSel.value : '';
    if (t.includes('json')) { body = json.value; headers['Content-Type'] = t; }
    else if (t.includes('multipart') && file.files[0]) { body = new FormData(); body.append('image', file.files[0]); }
    else if (t.startsWith('image/') && file.files[0]) { body = file.files[0]; headers['Content-Type'] = file.files[0].type || 'application/octet-stream'; }
    out.replaceChildren(h('p', { class: 'muted', text: method.toUpperCase() + ' ' + url + ' …' }));
    try {
      const res = await fetch(url, { method: method.toUpperCase(), headers, body, credentials: 'same-origin' });
      const type = res.headers.get('content-type') || '';
      const head = h('p', {}, h('strong', { text: res.status + ' ' + res.statusText }), ' ', h('code', { text: type }));
      if (type.startsWith('image/')) out.replaceChildren(head, h('img', { src: URL.createObjectURL(await res.blob()), alt: 'response image' }));
      else {
        let text = await res.text();
        if (type.includes('json')) { try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* as is */ } }
        out.replaceChildren(head, h('pre', { text: text.length > 20000 ? text.slice(0, 20000) + '\n… (' + text.length + ' characters)' : text }));
      }
    } catch (err) {
      out.replaceChildren(h('p', { text: 'No answer: ' + (err && err.message ? err.message : err) }));
    }
  };
  return h('details', { class: 'try' }, h('summary', { text: 'Try it' }),
    h('form', { onsubmit: send }, inputs, typeSel ? h('label', {}, 'Body', typeSel) : null, types.length ? json : null, types.length ? file : null,
      h('p', {}, h('button', { type: 'submit', text: 'Send ' + method.toUpperCase() + ' ' + path }))), out);
}

function renderOp(path, method, op, shared) {
  const params = (shared || []).concat(op.parameters || []).map(deref);
  const id = op.operationId || method + path;
  const body = op.requestBody ? deref(op.requestBody) : null;
  return h('section', { class: 'op', id: 'op-' + id, 'data-operation-id': id },
    h('h3', {}, h('span', { class: 'method m-' + method, text: method }), h('code', { text: path }), h('span', { class: 'opid', text: op.operationId || '' })),
    op.summary ? h('p', { text: op.summary }) : null,
    op.description ? h('p', { class: 'desc', text: op.description }) : null,
    h('p', { class: 'small' }, h('span', { class: 'muted', text: 'Security: ' }), securityText(op)),
    params.length ? [h('h4', { text: 'Parameters' }), paramsTable(params)] : null,
    body ? [h('h4', { text: 'Request body' + (body.required ? ' (required)' : '') }), body.description ? h('p', { class: 'desc', text: body.description }) : null,
      Object.entries(body.content || {}).map(([t, m]) => h('div', {}, h('code', { text: t }), ' ', h('span', { class: 'muted', text: refName(m.schema) || typeOf(m.schema || {}) }), schemaTree(m.schema || {})))] : null,
    h('h4', { text: 'Responses' }),
    h('table', {}, h('tbody', {}, Object.entries(op.responses || {}).map(([code, r]) => {
      const resp = deref(r);
      return h('tr', {}, h('td', {}, h('code', { text: code })), h('td', {}, h('div', { class: 'desc', text: resp.description || '' }),
        Object.entries(resp.content || {}).map(([t, m]) => h('div', {}, h('code', { text: t }), ' ', h('span', { class: 'muted', text: refName(m.schema) }), code.startsWith('2') ? schemaTree(m.schema || {}) : null))));
    }))),
    tryIt(path, method, op, params));
}

function authBox() {
  const schemes = (doc.components && doc.components.securitySchemes) || {};
  const names = Object.keys(schemes);
  if (!names.length) return null;
  return h('section', { class: 'auth', 'aria-labelledby': 'auth-h' }, h('h2', { id: 'auth-h', text: 'Authentication' }),
    names.map((n) => {
      const s = schemes[n];
      return h('label', {}, n + ' — ' + (s.scheme ? s.type + ' ' + s.scheme : s.type) + (s.description ? ': ' + s.description : ''),
        h('input', { type: 'password', autocomplete: 'off', 'aria-label': n + ' token for Try it', oninput: (e) => { auth[n] = e.target.value.trim(); } }));
    }),
    h('p', { class: 'muted small', text: 'Used by "Try it" on this page only; kept in memory, never stored.' }));
}

async function main() {
  const res = await fetch('/openapi.json', { credentials: 'same-origin' });
  if (!res.ok) throw new Error('/openapi.json answered ' + res.status);
  doc = await res.json();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(renderOp(path, method, op, item.parameters));
    }
  }
  document.title = doc.info.title + ' ' + doc.info.version + ' — reference';
  $('#version').textContent = doc.info.version + ' · OpenAPI ' + doc.openapi;
  const servers = (doc.servers || []).map((s) => s.url);
  const main = $('#main');
  main.replaceChildren(...[h('h1', { text: doc.info.title }), h('p', { class: 'desc', text: doc.info.description || '' }),
    servers.length ? h('p', {}, 'Server: ', servers.map((u) => h('code', { text: u }))) : null,
    authBox(),
    [...byTag].map(([tag, ops]) => h('section', { id: 'tag-' + tag, 'aria-labelledby': 'h-' + tag }, h('h2', { id: 'h-' + tag, text: tag }), ops))].flat(Infinity).filter(Boolean));
  $('#toc').replaceChildren(...[...byTag].map(([tag, ops]) => [h('h2', { text: tag }), h('ul', {}, ops.map((el) =>
    h('li', {}, h('a', { href: '#' + el.id }, h('span', { class: 'method m-' + el.querySelector('.method').textContent, text: el.querySelector('.method').textContent }), ' ', el.querySelector('h3 code').textContent))))]).flat());
  if (location.hash) { const t = document.getElementById(location.hash.slice(1)); if (t) t.scrollIntoView(); }
  document.documentElement.dataset.ready = 'true';
}
main().catch((err) => {
  $('#main').replaceChildren(h('p', { text: 'Could not render the reference: ' + (err && err.message ? err.message : err) + '. The document is at ' }, h('a', { href: '/openapi.json', text: '/openapi.json' })));
  document.documentElement.dataset.ready = 'error';
});
`;
