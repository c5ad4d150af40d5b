import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gallery } from '../api/gallery.js';
import { parseApiEnv, startApiServer, type ApiServer, type StartApiOptions } from '../api/server.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import { b64, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * Hardening item 4, keyed writes: API keys with scopes on /v1 (API_KEYS, hashed; API_KEYS_FILE re-read on
 * change), open only on loopback without them, and a gallery size limit (GALLERY_MAX_ITEMS) answering 507.
 */

const TOKEN = 'test-admin-token-0123456789';
const admin = { Authorization: `Bearer ${TOKEN}` };
const sha = (key: string) => createHash('sha256').update(key).digest('hex');
const RW = 'rw-key-a1b2c3d4e5f6a7b8c9d0';
const RO = 'ro-key-0f9e8d7c6b5a4f3e2d1c';
const API_KEYS = `ci-bot:read+write:${sha(RW)},viewer:read:${sha(RO)}`;
const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });

const store = new MemoryStore();
const servers: ApiServer[] = [];
let shoe: Uint8Array<ArrayBuffer>;

beforeAll(async () => {
  await tf.setBackend('wasm');
  shoe = await png(await loadFashionMnist('test', { limit: 1 }), 0);
  await publishFixture(store, { seed: 7, activate: true });
}, 180_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(opts: StartApiOptions = {}): Promise<ApiServer & { logger: ReturnType<typeof createMemoryLogger> }> {
  const logger = createMemoryLogger();
  const api = await startApiServer({
    env: {},
    store,
    port: 0,
    initBackend: false,
    waitForModel: true,
    logger,
    ...opts,
    settings: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: 60_000, ...opts.settings },
  });
  servers.push(api);
  return Object.assign(api, { logger });
}

async function expectProblem(res: Response, status: number, detail?: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

const imageForm = (id: string) => {
  const form = new FormData();
  form.append('image', new Blob([shoe], { type: 'image/png' }), 'shoe.png');
  form.append('id', id);
  return form;
};

describe('no API keys: open, on loopback only', () => {
  let api: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    api = await start();
  }, 120_000);

  it('serves /v1 reads and gallery writes without a key, and says so', async () => {
    expect((await fetch(`${api.url}/v1/embeddings`, { method: 'POST', body: shoe, headers: { 'Content-Type': 'image/png' } })).status).toBe(200);
    expect((await fetch(`${api.url}/v1/images`, { method: 'POST', body: imageForm('open-1') })).status).toBe(201);
    expect((await fetch(`${api.url}/v1/images/open-1`, { method: 'DELETE' })).status).toBe(204);
    const warned = api.logger.records.find((r) => r.level === 'warn' && String(r.msg).startsWith('no API keys'));
    expect(warned?.msg).toBe(`no API keys: open to anyone who can reach 127.0.0.1:${api.port}`);
  });

  it('refuses to listen on a non-loopback HOST, naming API_KEYS', async () => {
    await expect(start({ waitForModel: false, settings: { HOST: '0.0.0.0' } })).rejects.toThrow(/HOST 0\.0\.0\.0 is not a loopback address.*API_KEYS.*ALLOW_OPEN_API=true/);
    await expect(start({ waitForModel: false, host: '192.0.2.1' })).rejects.toThrow(/API_KEYS/);
  });

  it('listens on a non-loopback HOST with API_KEYS, or with an explicit ALLOW_OPEN_API=true (and warns)', async () => {
    const keyed = await start({ waitForModel: false, env: { API_KEYS, HOST: '0.0.0.0' } });
    expect(keyed.logger.records.some((r) => r.msg === 'API keys required on /v1')).toBe(true);
    const open = await start({ waitForModel: false, env: { ALLOW_OPEN_API: 'true', HOST: '0.0.0.0' } });
    expect(open.logger.records.some((r) => r.level === 'warn' && r.msg === `no API keys and ALLOW_OPEN_API=true: /v1 is open to anyone who can reach 0.0.0.0:${open.port}`)).toBe(true);
  });
});

describe('API_KEYS', () => {
  let api: Awaited<ReturnType<typeof start>>;
  const url = (p: string) => `${api.url}${p}`;
  beforeAll(async () => {
    api = await start({ env: { API_KEYS, CORS_ORIGINS: 'https://app.example' } });
  }, 120_000);

  it('401 with WWW-Authenticate without a key or with a wrong one, naming the scope needed', async () => {
    const none = await fetch(url('/v1/models'));
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="api", scope="read"');
    expect(await expectProblem(none, 401, /Authorization: Bearer/)).toMatchObject({ requiredScope: 'read' });
    const wrong = await fetch(url('/v1/images'), { method: 'POST', body: imageForm('x'), headers: bearer('not-a-key-of-ours') });
    expect(wrong.headers.get('www-authenticate')).toMatch(/scope="write", error="invalid_token"/);
    await expectProblem(wrong, 401, /not one of this deployment's keys/);
    // The admin token is not an API key.
    await expectProblem(await fetch(url('/v1/models'), { headers: admin }), 401);
  });

  it("403 when the key lacks the scope: a read key cannot change the gallery", async () => {
    const add = await fetch(url('/v1/images'), { method: 'POST', body: imageForm('ro-1'), headers: bearer(RO) });
    expect(add.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect(await expectProblem(add, 403, /API key 'viewer' has the scope read; POST \/v1\/images needs 'write'/)).toMatchObject({ requiredScope: 'write' });
    await expectProblem(await fetch(url('/v1/images/anything'), { method: 'DELETE', headers: bearer(RO) }), 403);
    await expectProblem(await fetch(url('/v1/images/ro-1'), { headers: bearer(RW) }), 404);
  });

  it('the right scope is served: read for embed/search/list, write for add and delete', async () => {
    const add = await fetch(url('/v1/images'), { method: 'POST', body: imageForm('rw-1'), headers: bearer(RW) });
    expect(add.status, await add.text()).toBe(201);
    const embed = await fetch(url('/v1/embeddings'), { method: 'POST', body: shoe, headers: { 'Content-Type': 'image/png', ...bearer(RO) } });
    expect(embed.status).toBe(200);
    const search = await fetch(url('/v1/search'), { method: 'POST', body: JSON.stringify({ base64: b64(shoe), k: 1 }), headers: { 'Content-Type': 'application/json', ...bearer(RO) } });
    expect(search.status).toBe(200);
    expect((await search.json()) as unknown).toMatchObject({ results: [{ id: 'rw-1' }] });
    expect((await fetch(url('/v1/images/rw-1'), { headers: bearer(RO) })).status).toBe(200);
    expect((await fetch(url('/v1/images/rw-1/content'), { headers: bearer(RO) })).status).toBe(200);
    expect((await fetch(url('/v1/models/current'), { headers: bearer(RO) })).status).toBe(200);
    expect((await fetch(url('/v1/images/rw-1'), { method: 'DELETE', headers: bearer(RW) })).status).toBe(204);
  });

  it('a cross-site HTML form (multipart, no Authorization header) cannot write', async () => {
    const form = imageForm('csrf-1');
    const res = await fetch(url('/v1/images'), { method: 'POST', body: form, headers: { Origin: 'https://evil.example', Referer: 'https://evil.example/page' } });
    await expectProblem(res, 401);
    expect((await fetch(url('/v1/images/csrf-1'), { headers: bearer(RO) })).status).toBe(404);
  });

  it('every /v1 operation declares ApiKey security with the scope the server enforces; the rest stay open', async () => {
    const doc = (await (await fetch(url('/openapi.json'))).json()) as {
      paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    expect(doc.components.securitySchemes['ApiKey']).toMatchObject({ type: 'http', scheme: 'bearer' });
    const ops = Object.entries(doc.paths).flatMap(([p, methods]) => Object.entries(methods).map(([m, op]) => ({ p, m, op })));
    const v1 = ops.filter((o) => o.p.startsWith('/v1/'));
    expect(v1.length).toBeGreaterThanOrEqual(10);
    for (const { p, m, op } of v1) {
      const scope = op.security?.[0]?.['ApiKey']?.[0];
      expect(scope, `${m} ${p}`).toBe(m === 'get' ? 'read' : p.startsWith('/v1/images') ? 'write' : 'read');
      // The server agrees: a read key is refused exactly where the document says 'write'.
      const res = await fetch(url(p.replace(/\{[^}]+\}/g, 'missing-id')), { method: m.toUpperCase(), headers: bearer(RO) });
      expect(res.status === 403, `${m} ${p} → ${res.status}`).toBe(scope === 'write');
      expect(res.status, `${m} ${p}`).not.toBe(401);
    }
    for (const p of ['/healthz', '/readyz', '/metrics', '/openapi.json']) expect(doc.paths[p]?.['get']?.security ?? [], p).toEqual([]);
    for (const p of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs', '/']) expect((await fetch(url(p))).status, p).toBe(200);
  });

  it('a CORS preflight from an allowed origin needs no key (it is how a browser asks to send one)', async () => {
    const res = await fetch(url('/v1/images'), {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('admin routes keep ADMIN_TOKEN: an API key does not open them, and the admin token still does', async () => {
    await expectProblem(await fetch(url('/admin/jobs'), { headers: bearer(RW) }), 401, /bearer token is wrong/);
    expect((await fetch(url('/admin/jobs'), { headers: admin })).status).toBe(200);
  });

  it('logs the key names and scopes, never the digests', () => {
    const rec = api.logger.records.find((r) => r.msg === 'API keys required on /v1');
    expect(rec?.keys).toEqual(['ci-bot:read+write', 'viewer:read']);
    expect(JSON.stringify(api.logger.records)).not.toContain(sha(RW));
  });
});

describe('API_KEYS is validated at startup', () => {
  it('names the bad entry (by position and name, never echoing a pasted key)', async () => {
    const pasted = 'sk-live-this-is-the-raw-key-itself';
    const bad = (v: string) => () => parseApiEnv({ API_KEYS: v });
    expect(bad(`ci-bot:read+write:${sha(RW)},viewer:read:${pasted}`)).toThrow(/API_KEYS: entry 2 \(viewer\): the third part must be the SHA-256 of the key/);
    expect(bad(`ci-bot:read+write:${sha(RW)},viewer:read:${pasted}`)).not.toThrow(new RegExp(pasted));
    expect(bad(`ci-bot:admin:${sha(RW)}`)).toThrow(/entry 1 \(ci-bot\): scopes must be read, write or read\+write, not 'admin'/);
    expect(bad(`ci-bot:${sha(RW)}`)).toThrow(/entry 1 \(ci-bot\): expected name:scopes:sha256-hex/);
    expect(bad(`a:read:${sha(RW)},b:write:${sha(RW)}`)).toThrow(/entry 2 \(b\): the same key as an earlier entry/);
    expect(bad(`a:read:${sha(RW)},a:write:${sha(RO)}`)).toThrow(/entry 2 \(a\): the name a is used by an earlier entry/);
    expect(bad(' , ')).toThrow(/API_KEYS: no entries/);
    await expect(start({ waitForModel: false, env: { API_KEYS: `viewer:read:${sha(RO)},ci-bot:read+writ:${sha(RW)}` } })).rejects.toThrow(
      /invalid API settings: API_KEYS: entry 2 \(ci-bot\): scopes must be/,
    );
    await expect(start({ waitForModel: false, env: { API_KEYS, API_KEYS_FILE: '/nonexistent' } })).rejects.toThrow(/API_KEYS or API_KEYS_FILE, not both/);
  });
});

describe('API_KEYS_FILE: rotation without restart', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('takes a changed file without a restart; a broken edit keeps the previous keys', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vicreg-keys-'));
    const file = path.join(dir, 'api-keys');
    await writeFile(file, `# rotated by the deploy job\nviewer:read:${sha(RO)}\n`);
    const api = await start({ waitForModel: false, env: { API_KEYS_FILE: file } });
    const status = async (key: string) => (await fetch(`${api.url}/v1/images`, { headers: bearer(key) })).status;
    // Wait for the server's own report that it read the file again (it stats it every second); the test's
    // timeout is the only bound, and the verdict is what the keys do afterwards.
    const logged = (msg: string, level: string) => {
      const before = api.logger.records.filter((r) => r.msg === msg && r.level === level).length;
      return async () => {
        while (api.logger.records.filter((r) => r.msg === msg && r.level === level).length === before) await new Promise((r) => setTimeout(r, 50));
      };
    };
    expect([await status(RO), await status(RW)]).toEqual([200, 401]);
    const reloaded = logged('API keys reloaded', 'info');
    await writeFile(file, `ci-bot:read+write:${sha(RW)}\n`);
    await reloaded();
    expect([await status(RO), await status(RW)]).toEqual([401, 200]);
    const refused = logged('API keys not reloaded; the previous keys stay in force', 'error');
    await writeFile(file, 'ci-bot:read+write:not-hex\n');
    await refused();
    expect(await status(RW)).toBe(200);
  });
});

describe('GALLERY_MAX_ITEMS', () => {
  it('defaults to 100000; 0 means no limit', () => {
    expect(parseApiEnv({}).GALLERY_MAX_ITEMS).toBe(100_000);
    expect(parseApiEnv({ GALLERY_MAX_ITEMS: '0' }).GALLERY_MAX_ITEMS).toBe(0);
    expect(() => parseApiEnv({ GALLERY_MAX_ITEMS: '-1' })).toThrow(/GALLERY_MAX_ITEMS must be ≥ 0/);
  });

  it('507 for a new id once the gallery holds the limit; replacing an id is allowed; a delete makes room', async () => {
    const own = new MemoryStore();
    // One image already in the bucket (another replica's, or before a restart): counted by the first LIST.
    await new Gallery(own).put({ id: 'before', contentType: 'image/png', image: shoe });
    const api = await start({ store: own, waitForModel: false, env: { GALLERY_MAX_ITEMS: '3' } });
    const add = (id: string) => fetch(`${api.url}/v1/images`, { method: 'POST', body: imageForm(id) });
    expect((await add('a')).status).toBe(201);
    expect((await add('b')).status).toBe(201);
    const full = await add('c');
    expect(await expectProblem(full, 507, /holds 3 images, this deployment's limit \(GALLERY_MAX_ITEMS=3\)/)).toMatchObject({
      type: 'urn:vicreg:problem:gallery-full',
      limit: 3,
      setting: 'GALLERY_MAX_ITEMS',
    });
    expect((await fetch(`${api.url}/v1/images/c`)).status).toBe(404);
    expect((await add('a')).status).toBe(201); // replace
    expect((await add('before')).status).toBe(201); // replace
    expect((await fetch(`${api.url}/v1/images/b`, { method: 'DELETE' })).status).toBe(204);
    expect((await add('c')).status).toBe(201);
    await expectProblem(await add('d'), 507);
  });
});
