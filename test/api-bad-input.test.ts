import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import { b64, DIM, png, publishFixture } from './helpers/api-fixtures.js';
import { until } from './helpers/poll.js';

/**
 * Hardening item 5: inputs that used to give a 500 or a wrong answer. Each answers a 4xx naming the field
 * (or, for transport abuse, is cut off by the server), never a 5xx, and never logs at error level.
 */

const TOKEN = 'test-admin-token-0123456789';
const admin = { Authorization: `Bearer ${TOKEN}` };
const logger = createMemoryLogger();
const store = new MemoryStore();
let api: ApiServer;
let shoe: Uint8Array<ArrayBuffer>;

beforeAll(async () => {
  await tf.setBackend('wasm');
  const test = await loadFashionMnist('test', { limit: 4 });
  shoe = await png(test, 0);
  await publishFixture(store, { seed: 5, activate: true });
  api = await startTestApi({
    store,
    waitForModel: true,
    logger,
    settings: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: 60_000, BATCH_WAIT_MS: 2 },
  });
  // A few gallery images, so searches have something to return.
  for (let i = 0; i < 3; i++) {
    const res = await postJson('/v1/images', { base64: b64(await png(test, i)), id: `g${i}`, label: 'x' });
    expect(res.status, await res.text()).toBe(201);
  }
}, 180_000);

afterAll(async () => {
  await api?.close();
});

// Every test, on its own: its inputs got no 5xx and nothing was logged at error level.
let mark = 0;
beforeEach(() => {
  mark = logger.records.length;
});
afterEach(async () => {
  expect(logger.records.slice(mark).filter((l) => l.level === 'error')).toEqual([]);
  const metrics = await (await fetch(url('/metrics'))).text();
  expect(metrics).not.toMatch(/http_requests_total\{[^}]*status="5\d\d"\}/);
});

const url = (p: string) => `${api.url}${p}`;
const postJson = (p: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url(p), { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'Content-Type': 'application/json', ...headers } });

async function expectProblem(res: Response, status: number, field?: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as { detail: string; errors?: { field: string }[] };
  if (field) {
    expect(body.detail).toContain(field);
    expect(body.errors?.map((e) => e.field)).toContain(field);
  }
  return body;
}

/** `{"a":` + n levels of nested arrays: small, valid JSON that JSON.stringify cannot walk. */
const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);
const DEEP = 4500; // 9 KB: far under the body limit

describe('deeply nested JSON', () => {
  it('gallery metadata nested thousands of levels deep (JSON body) → 400 naming body.metadata', async () => {
    const body = `{"base64":"${b64(shoe)}","id":"deep-1","metadata":{"a":${nested(DEEP)}}}`;
    await expectProblem(await postJson('/v1/images', body), 400, 'body.metadata');
    expect((await fetch(url('/v1/images/deep-1'))).status).toBe(404);
  });

  it('gallery metadata nested thousands of levels deep (multipart field) → 400 naming metadata', async () => {
    const form = new FormData();
    form.append('image', new Blob([shoe], { type: 'image/png' }), 'shoe.png');
    form.append('id', 'deep-2');
    form.append('metadata', `{"a":${nested(DEEP)}}`);
    await expectProblem(await fetch(url('/v1/images'), { method: 'POST', body: form }), 400, 'metadata');
    expect((await fetch(url('/v1/images/deep-2'))).status).toBe(404);
  });

  it('metadata is limited to 32 levels; 32 is fine', async () => {
    // {"a": ...31 arrays...} is 32 levels, counting the metadata object.
    const ok = await postJson('/v1/images', `{"base64":"${b64(shoe)}","id":"depth-32","metadata":{"a":${nested(31)}}}`);
    expect(ok.status, await ok.text()).toBe(201);
    const got = (await (await fetch(url('/v1/images/depth-32'))).json()) as { metadata: unknown };
    expect(JSON.stringify(got.metadata)).toBe(`{"a":${nested(31)}}`);
    await expectProblem(await postJson('/v1/images', `{"base64":"${b64(shoe)}","id":"depth-33","metadata":{"a":${nested(32)}}}`), 400, 'body.metadata');
    const form = new FormData();
    form.append('image', new Blob([shoe], { type: 'image/png' }), 'shoe.png');
    form.append('metadata', `{"a":${nested(40)}}`);
    await expectProblem(await fetch(url('/v1/images'), { method: 'POST', body: form }), 400, 'metadata');
  });

  it('other JSON bodies nested thousands of levels deep → 400 naming the field', async () => {
    await expectProblem(await postJson('/v1/search', `{"vector":${nested(DEEP)}}`), 400, 'body.vector');
    await expectProblem(await postJson('/v1/search', `{"id":"g0","filter":{"label":${nested(DEEP)}}}`), 400, 'body.filter');
    await expectProblem(await postJson('/v1/embeddings', `{"images":${nested(DEEP)}}`), 400, 'body.images');
    await expectProblem(await postJson('/v1/classify', `{"base64":"x","extra":{"a":${nested(DEEP)}}}`), 400, 'body.extra');
    await expectProblem(await postJson('/v1/search', nested(DEEP)), 400, 'body');
    await expectProblem(await postJson('/admin/retrain', `{"dataset":{"kind":"gallery"},"model":${nested(DEEP)}}`, admin), 400, 'body.model');
  });
});

describe('search vectors must be finite in float32', () => {
  const vec = (x: number) => Array.from({ length: DIM }, (_, i) => (i === 3 ? x : 0.5));

  it('a value beyond float32 range (finite in JSON) → 400 naming the element', async () => {
    for (const x of [1e39, -1e39, 3.5e38]) await expectProblem(await postJson('/v1/search', { vector: vec(x) }), 400, 'body.vector.3');
    // All of them: one error, not DIM.
    const all = await expectProblem(await postJson('/v1/search', { vector: Array(DIM).fill(1e39) }), 400, 'body.vector.0');
    expect((all.errors as unknown[]).length).toBe(1);
  });

  it('the float32 extremes are accepted and score as numbers', async () => {
    for (const x of [3.4028234663852886e38, -3.4028234663852886e38, 1e-45]) {
      const res = await postJson('/v1/search', { vector: vec(x), k: 3 });
      const text = await res.text();
      expect(res.status, text).toBe(200);
      const body = JSON.parse(text) as { results: { score: unknown }[] };
      expect(body.results.length).toBeGreaterThan(0);
      for (const r of body.results) expect(typeof r.score).toBe('number');
    }
  });
});

describe('k in a JSON body is a JSON integer', () => {
  it('true, [5], "5", 5.5, null, 0 → 400 naming body.k', async () => {
    for (const k of [true, [5], '5', 5.5, null, 0, 1001]) await expectProblem(await postJson('/v1/search', { id: 'g0', k }), 400, 'body.k');
  });

  it('a JSON integer works; ?k= in the query string still parses from text', async () => {
    const json = await postJson('/v1/search', { id: 'g0', k: 1 });
    expect(json.status, await json.clone().text()).toBe(200);
    expect(((await json.json()) as { results: unknown[] }).results).toHaveLength(1);
    const raw = await fetch(url('/v1/search?k=2'), { method: 'POST', body: shoe, headers: { 'Content-Type': 'image/png' } });
    expect(raw.status, await raw.clone().text()).toBe(200);
    expect(((await raw.json()) as { results: unknown[] }).results).toHaveLength(2);
    const cls = await fetch(url('/v1/classify?k=2'), { method: 'POST', body: shoe, headers: { 'Content-Type': 'image/png' } });
    expect(cls.status, await cls.clone().text()).toBe(200);
    const list = await fetch(url('/v1/images?limit=2'));
    expect(list.status).toBe(200);
  });
});

/** Open a raw connection, send `head` and `partial` bytes of a longer body, then close it. */
async function sendHalfAndClose(port: number, head: string, partial: Uint8Array): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(head);
      sock.write(partial, () => setTimeout(() => sock.destroy(), 50));
    });
    sock.on('error', reject);
    sock.on('close', () => resolve());
  });
}

/** Waits for a state the test can observe (a log line); the test's own timeout is the only bound. */
const POLL = { intervalMs: 20 };

describe('a client that disconnects mid-body', () => {
  it('is a client error: no 5xx in /metrics, nothing logged at error level', async () => {
    const port = api.port;
    const cases = [
      { route: '/v1/embeddings', type: 'image/png', id: 'abort-raw' },
      { route: '/v1/search', type: 'application/json', id: 'abort-json' },
      { route: '/v1/images', type: 'multipart/form-data; boundary=xyz', id: 'abort-multipart' },
    ];
    for (const c of cases) {
      const partial = c.type.startsWith('multipart')
        ? new TextEncoder().encode('--xyz\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n' + 'x'.repeat(500))
        : c.type === 'application/json'
          ? new TextEncoder().encode(`{"base64":"${b64(shoe).slice(0, 200)}`)
          : shoe.subarray(0, 100);
      const head = `POST ${c.route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${c.type}\r\nContent-Length: 50000\r\nX-Request-Id: ${c.id}\r\n\r\n`;
      await sendHalfAndClose(port, head, partial);
    }
    const done = (id: string) => logger.records.find((l) => l.msg === 'request' && l.requestId === id);
    await until('every aborted request logged', () => cases.every((c) => done(c.id)), POLL);
    for (const c of cases) {
      const line = done(c.id)!;
      expect(line.status, c.route).toBeGreaterThanOrEqual(400);
      expect(line.status, c.route).toBeLessThan(500);
    }
    const forThese = logger.records.filter((l) => cases.some((c) => l.requestId === c.id));
    expect(forThese.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
    expect(JSON.stringify(forThese)).not.toMatch(/stack/);
    const metrics = await (await fetch(url('/metrics'))).text();
    for (const c of cases) expect(metrics).not.toMatch(new RegExp(`http_requests_total\\{method="POST",route="${c.route}",status="5\\d\\d"\\}`));
    expect(metrics).toMatch(/http_requests_total\{method="POST",route="\/v1\/embeddings",status="499"\} 1/);
  });
});

describe('HTTP server limits', () => {
  let slow: ApiServer;
  const slowLogger = createMemoryLogger();
  beforeAll(async () => {
    // Its own server (no model needed: the body is read before one is asked for) with short limits.
    slow = await startTestApi({
      store: new MemoryStore(),
      logger: slowLogger,
      settings: { POLL_INTERVAL_MS: 60_000 },
      // Idle keep-alive connections stay open for the cap test, however long it takes to reach its fourth.
      httpLimits: { requestTimeoutMs: 300, headersTimeoutMs: 300, keepAliveTimeoutMs: 10 * 60_000, maxConnections: 3 },
    });
  });
  afterAll(async () => {
    await slow?.close();
  });

  /** Resolves with what the server sent once it closes the connection ('closed' if nothing). */
  function closed(sock: Socket): Promise<string> {
    return new Promise((resolve) => {
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('error', () => {});
      sock.on('close', () => resolve(got || 'closed'));
    });
  }

  it('a body trickled a byte at a time is cut off at the request timeout, not held for minutes', async () => {
    const sock = connect(slow.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(`POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n`);
    const timer = setInterval(() => sock.writable && sock.write('x'), 100);
    try {
      // Node's default would hold it for 5 minutes, past this test's timeout: the close itself is the verdict.
      const outcome = await closed(sock);
      if (outcome !== 'closed') expect(outcome).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      clearInterval(timer);
      sock.destroy();
    }
    await until('a logged /v1/embeddings request', () => slowLogger.records.some((l) => l.msg === 'request' && l.route === '/v1/embeddings'), POLL);
    expect(slowLogger.records.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('connections past the cap are refused', async () => {
    const socks: Socket[] = [];
    try {
      // Three keep-alive connections, idle after one request each (the cap), then a fourth.
      for (let i = 0; i < 3; i++) {
        const s = connect(slow.port, '127.0.0.1');
        socks.push(s);
        s.on('error', () => {});
        await new Promise((r) => s.once('connect', r));
        const answered = new Promise<string>((r) => s.once('data', (d) => r(d.toString())));
        s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
        expect(await answered).toMatch(/^HTTP\/1\.1 200/);
      }
      const fourth = connect(slow.port, '127.0.0.1');
      socks.push(fourth);
      fourth.on('error', () => {});
      // Whichever comes first: an answer (accepted: wrong) or the connection closed unanswered (refused).
      const outcome = new Promise<string>((resolve) => {
        fourth.once('data', (d) => resolve(d.toString()));
        fourth.once('close', () => resolve('closed'));
      });
      fourth.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect(await outcome).toBe('closed');
      expect(socks.slice(0, 3).every((s) => !s.destroyed)).toBe(true);
    } finally {
      for (const s of socks) s.destroy();
    }
  });
});
