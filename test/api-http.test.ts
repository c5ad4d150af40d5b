import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageDataset } from '../shared/data/dataset.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryLogger } from '../shared/log.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { withLocalS3 } from './helpers/s3.js';
import { b64, bombPng, DIM, pool, png, publishFixture } from './helpers/api-fixtures.js';

const s3 = withLocalS3();
const TOKEN = 'test-admin-token-0123456789';
let api: ApiServer;
let train: ImageDataset;
let test: ImageDataset;
let version: string;
const logger = createMemoryLogger();

const GALLERY_PER_CLASS = 20;
/** Training rows in the gallery: the first GALLERY_PER_CLASS of each class from beyond the head's rows. */
const galleryIdx: number[] = [];

beforeAll(async () => {
  await tf.setBackend('wasm');
  [train, test] = await Promise.all([loadFashionMnist('train', { limit: 3000 }), loadFashionMnist('test', { limit: 200 })]);
  version = await publishFixture(s3.current.store, { seed: 11, activate: true, headData: train, headN: 2000 });
  api = await startTestApi({
    store: s3.current.store,
    waitForModel: true,
    logger,
    settings: { ADMIN_TOKEN: TOKEN, MAX_BODY_BYTES: 200_000, MAX_PIXELS: 1_000_000, POLL_INTERVAL_MS: 60_000, CORS_ORIGINS: 'https://app.example' },
  });
  // The labelled gallery every search and classify test reads (each test adds and deletes only its own ids).
  const perClass = new Map<number, number>();
  for (let i = 2000; i < train.n && galleryIdx.length < GALLERY_PER_CLASS * 10; i++) {
    const y = train.labels![i]!;
    if ((perClass.get(y) ?? 0) < GALLERY_PER_CLASS) {
      perClass.set(y, (perClass.get(y) ?? 0) + 1);
      galleryIdx.push(i);
    }
  }
  const statuses = await pool(galleryIdx, 8, async (i) => {
    const res = await postJson('/v1/images', { base64: b64(await png(train, i)), id: `train-${i}`, label: train.classNames![train.labels![i]!]!, metadata: { index: i } });
    return res.status;
  });
  if (!statuses.every((st) => st === 201)) throw new Error(`gallery upload: ${JSON.stringify(statuses)}`);
}, 180_000);

afterAll(async () => {
  await api?.close();
});

const url = (p: string) => `${api.url}${p}`;
const post = (p: string, body: BodyInit, type?: string, headers: Record<string, string> = {}) =>
  fetch(url(p), { method: 'POST', body, headers: { ...(type ? { 'Content-Type': type } : {}), ...headers } });
const postJson = (p: string, body: unknown, headers: Record<string, string> = {}) => post(p, JSON.stringify(body), 'application/json', headers);
const admin = { Authorization: `Bearer ${TOKEN}` };

async function expectProblem(res: Response, status: number, detail?: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:vicreg:problem:/), title: expect.any(String), detail: expect.any(String) });
  expect(body.requestId).toBe(res.headers.get('x-request-id'));
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

describe('ops', () => {
  it('healthz, readyz, request ids, CORS', async () => {
    const h = await fetch(url('/healthz'), { headers: { 'X-Request-Id': 'my-trace-1', Origin: 'https://app.example' } });
    expect(h.status).toBe(200);
    expect(h.headers.get('x-request-id')).toBe('my-trace-1');
    expect(h.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const other = await fetch(url('/healthz'), { headers: { Origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const r = await fetch(url('/readyz'));
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ status: 'ready', model: { version } });
    expect(logger.records.some((l) => l.msg === 'request' && l.requestId === 'my-trace-1' && l.status === 200)).toBe(true);
  });

  it('openapi.json describes the routes and the request schemas; /docs points at it', async () => {
    const doc = (await (await fetch(url('/openapi.json'))).json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/v1/embeddings', '/v1/images', '/v1/images/{id}', '/v1/search', '/v1/classify', '/v1/models', '/v1/models/current', '/admin/retrain', '/admin/jobs/{id}/loss.svg', '/admin/models/{version}/activate'])
      expect(Object.keys(doc.paths)).toContain(p);
    expect(doc.components.schemas).toHaveProperty('SearchRequest');
    expect(doc.components.schemas).toHaveProperty('RetrainRequest');
    const html = await (await fetch(url('/docs'))).text();
    expect(html).toContain('/openapi.json');
  });

  it('404 and 405 are problem+json; 405 carries Allow', async () => {
    await expectProblem(await fetch(url('/v2/nothing')), 404, /no route GET \/v2\/nothing/);
    const res = await fetch(url('/v1/embeddings'));
    const p = await expectProblem(res, 405);
    expect(res.headers.get('allow')).toContain('POST');
    expect(p.detail).toMatch(/GET is not allowed/);
    expect((await fetch(url('/v1/images/abc'), { method: 'PUT', body: 'x' })).status).toBe(405);
  });
});

describe('embeddings', () => {
  it('embeds a raw PNG, a multipart batch and a JSON batch identically', async () => {
    const a = await png(test, 0);
    const b = await png(test, 1);
    const raw = await post('/v1/embeddings', a, 'image/png');
    expect(raw.status).toBe(200);
    expect(raw.headers.get('x-model-version')).toBe(version);
    const rawText = await raw.text();
    const rawBody = JSON.parse(rawText) as { model: { version: string }; dimension: number; data: { index: number; embedding: number[] }[] };
    expect(raw.headers.get('content-type')).toMatch(/^application\/json/);
    // Printed at float32 precision (at most 9 significant digits), not as float64's up to 17.
    expect(rawText).not.toMatch(/[1-9]\d{9,}/);
    expect(rawBody.model.version).toBe(version);
    expect(rawBody.dimension).toBe(DIM);
    expect(rawBody.data[0]!.embedding).toHaveLength(DIM);

    const form = new FormData();
    form.append('image', new Blob([a], { type: 'image/png' }), 'a.png');
    form.append('image', new Blob([b], { type: 'image/png' }), 'b.png');
    const multi = (await (await fetch(url('/v1/embeddings'), { method: 'POST', body: form })).json()) as typeof rawBody;
    expect(multi.data).toHaveLength(2);
    const json = (await (await postJson('/v1/embeddings', { images: [{ base64: b64(a) }, { base64: `data:image/png;base64,${b64(b)}` }] })).json()) as typeof rawBody;
    for (let i = 0; i < DIM; i++) {
      expect(multi.data[0]!.embedding[i]).toBeCloseTo(rawBody.data[0]!.embedding[i]!, 4);
      expect(json.data[1]!.embedding[i]).toBeCloseTo(multi.data[1]!.embedding[i]!, 4);
    }
    // Different images, different embeddings.
    expect(json.data[0]!.embedding).not.toEqual(json.data[1]!.embedding);
  });

  it('matches the bare model on the same pixels (decode + normalise are faithful)', async () => {
    const { loadCheckpoint } = await import('../shared/checkpoint/publish.js');
    const { normalisedBatch } = await import('./helpers/api-fixtures.js');
    const ck = await loadCheckpoint(s3.current.store, version);
    const x = normalisedBatch(test, 5, 1);
    const y = ck.model.predict(x) as tf.Tensor;
    const expected = Array.from(await y.data());
    tf.dispose([x, y]);
    ck.model.dispose();
    const got = ((await (await post('/v1/embeddings', await png(test, 5), 'image/png')).json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
    got.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
  });

  it('a bad item in a batch gets its own error; the rest succeed', async () => {
    const good = b64((await png(test, 2)));
    const res = await postJson('/v1/embeddings', { images: [{ base64: good }, { base64: Buffer.from('not an image').toString('base64') }, { base64: '@@@' }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { index: number; embedding?: number[]; error?: { status: number; detail: string } }[] };
    expect(body.data[0]!.embedding).toHaveLength(DIM);
    expect(body.data[1]!.error).toMatchObject({ status: 422 });
    expect(body.data[2]!.error).toMatchObject({ status: 400, detail: expect.stringMatching(/images\[2\]\.base64/) });
  });

  it('every input error code, with real bad files', async () => {
    const jpeg = new Uint8Array(await sharp(await png(test, 3)).jpeg().toBuffer());
    await expectProblem(await post('/v1/embeddings', jpeg.subarray(0, jpeg.length >> 1), 'image/jpeg'), 422, /could not decode the JPEG image: .*premature end/);
    await expectProblem(await post('/v1/embeddings', 'I am plain text, not a PNG', 'image/png'), 422, /not a recognisable image/);
    await expectProblem(await post('/v1/embeddings', 'x', 'text/plain'), 415, /text\/plain/);
    await expectProblem(await post('/v1/embeddings', '<svg/>', 'image/svg+xml'), 415);
    const bmp = new Uint8Array(Buffer.alloc(70));
    bmp.set([0x42, 0x4d]);
    await expectProblem(await post('/v1/embeddings', bmp, 'application/octet-stream'), 415, /BMP/);
    // 1100×1000 real PNG: over MAX_PIXELS (1,000,000) but under the body limit.
    const big = new Uint8Array(await sharp({ create: { width: 1100, height: 1000, channels: 3, background: 'black' } }).png().toBuffer());
    expect(big.length).toBeLessThan(200_000);
    await expectProblem(await post('/v1/embeddings', big, 'image/png'), 413, /pixel/);
    // A PNG whose header claims 100000×100000 (a decompression bomb) is refused from the header alone.
    await expectProblem(await post('/v1/embeddings', bombPng(100_000, 100_000), 'image/png'), 413, /100000×100000/);
    // Over MAX_BODY_BYTES (200 kB).
    const noise = new Uint8Array(await sharp(Buffer.from(Array.from({ length: 400 * 400 }, (_, i) => (i * 7919) % 251)), { raw: { width: 400, height: 400, channels: 1 } }).png({ compressionLevel: 0 }).toBuffer());
    expect(noise.length).toBeGreaterThan(200_000);
    await expectProblem(await post('/v1/embeddings', noise, 'image/png'), 413, /limit/);
    await expectProblem(await post('/v1/embeddings', '{"images": [', 'application/json'), 400, /not valid JSON/);
    const field = await expectProblem(await postJson('/v1/embeddings', { images: [{ bas64: 'x' }] }), 400);
    expect(JSON.stringify(field.errors)).toMatch(/body\.images\.0/);
    await expectProblem(await postJson('/v1/embeddings', { images: Array.from({ length: 65 }, () => ({ base64: 'AAAA' })) }), 400, /body\.images/);
    await expectProblem(await post('/v1/embeddings', new Uint8Array(0), 'image/png'), 400, /empty/);
    await expectProblem(await fetch(url('/v1/embeddings'), { method: 'POST', body: new Uint8Array([1, 2]) }), 415);
  });
});

describe('gallery, search and classification', () => {
  it('adds labelled images (multipart, JSON, raw) and reads them back', async () => {
    // Training rows the gallery does not hold, added under ids of this test's own.
    const rows = [1990, 1991, 1992];
    const ids = rows.map((i) => `add-${i}`);
    try {
      const statuses = await Promise.all(
        rows.map(async (i, j) => {
          const label = train.classNames![train.labels![i]!]!;
          const id = ids[j]!;
          const bytes = await png(train, i);
          if (j === 0) {
            const form = new FormData();
            form.append('image', new Blob([bytes], { type: 'image/png' }), `${id}.png`);
            form.append('id', id);
            form.append('label', label);
            form.append('metadata', JSON.stringify({ index: i }));
            return (await fetch(url('/v1/images'), { method: 'POST', body: form })).status;
          }
          if (j === 1) return (await postJson('/v1/images', { base64: b64(bytes), id, label, metadata: { index: i } })).status;
          return (await post(`/v1/images?id=${id}&label=${encodeURIComponent(label)}`, bytes, 'image/png')).status;
        }),
      );
      expect(statuses).toEqual([201, 201, 201]);

      for (const [j, i] of rows.entries()) {
        const one = (await (await fetch(url(`/v1/images/${ids[j]}`))).json()) as Record<string, unknown>;
        expect(one).toMatchObject({ id: ids[j], label: train.classNames![train.labels![i]!], indexed: true });
        if (j < 2) expect(one.metadata).toEqual({ index: i });
        const content = await fetch(url(`/v1/images/${ids[j]}/content`));
        expect(Buffer.from(await content.arrayBuffer()).equals(Buffer.from(await png(train, i)))).toBe(true);
      }

      // Paging walks every id once: the gallery's and this test's.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = (await (await fetch(url(`/v1/images?limit=64${cursor ? `&cursor=${cursor}` : ''}`))).json()) as { items: { id: string }[]; nextCursor: string | null };
        seen.push(...page.items.map((x) => x.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual(expect.arrayContaining([...galleryIdx.map((i) => `train-${i}`), ...ids]));
      await expectProblem(await fetch(url('/v1/images?limit=0')), 400, /query\.limit/);
    } finally {
      for (const id of ids) await fetch(url(`/v1/images/${id}`), { method: 'DELETE' });
    }
  });

  it('search by image: top neighbours share the query class well above chance (10%)', async () => {
    let agree = 0;
    let total = 0;
    const queries = Array.from({ length: 100 }, (_, i) => i);
    const results = await pool(queries, 8, async (i) => {
      const res = await post('/v1/search?k=5', await png(test, i), 'image/png');
      expect(res.status).toBe(200);
      return { y: test.classNames![test.labels![i]!], body: (await res.json()) as { model: { version: string }; results: { id: string; score: number; label: string }[] } };
    });
    for (const { y, body } of results) {
      expect(body.model.version).toBe(version);
      expect(body.results).toHaveLength(5);
      for (let j = 1; j < body.results.length; j++) expect(body.results[j - 1]!.score).toBeGreaterThanOrEqual(body.results[j]!.score);
      for (const r of body.results) {
        total++;
        if (r.label === y) agree++;
      }
    }
    const rate = agree / total;
    console.log(`search: top-5 neighbours share the query's class ${(rate * 100).toFixed(1)}% (chance 10%)`);
    expect(rate).toBeGreaterThan(0.4);
  });

  it('search by id, by vector, by base64 with a label filter; errors name fields', async () => {
    const id = `train-${galleryIdx[3]}`;
    const byId = (await (await postJson('/v1/search', { id, k: 3 })).json()) as { results: { id: string; score: number }[] };
    expect(byId.results.map((r) => r.id)).not.toContain(id);
    expect(byId.results).toHaveLength(3);
    const emb = ((await (await post('/v1/embeddings', await png(train, galleryIdx[3]!), 'image/png')).json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
    const byVector = (await (await postJson('/v1/search', { vector: emb, k: 4 })).json()) as { results: { id: string; score: number }[] };
    expect(byVector.results[0]!.id).toBe(id);
    expect(byVector.results[0]!.score).toBeCloseTo(1, 4);
    expect(byVector.results.slice(1).map((r) => r.id)).toEqual(byId.results.map((r) => r.id));
    const label = train.classNames![2]!;
    const filtered = (await (await postJson('/v1/search', { base64: b64((await png(test, 0))), k: 5, filter: { label } })).json()) as { results: { label: string }[] };
    expect(filtered.results.every((r) => r.label === label)).toBe(true);

    await expectProblem(await postJson('/v1/search', { vector: [1, 2, 3] }), 400, /body\.vector: has 3 numbers/);
    await expectProblem(await postJson('/v1/search', { k: 3 }), 400, /exactly one of id, vector or base64/);
    await expectProblem(await postJson('/v1/search', { id, k: 'many' }), 400, /body\.k/);
    await expectProblem(await postJson('/v1/search', { id: 'no-such-image' }), 404, /no-such-image/);
  });

  it('classifies held-out images by kNN and by the linear head well above chance', async () => {
    const n = 100;
    const rows = await pool(Array.from({ length: n }, (_, i) => 100 + i), 8, async (i) => {
      const bytes = await png(test, i);
      const knn = (await (await post('/v1/classify?method=knn&k=10', bytes, 'image/png')).json()) as { method: string; predictions: { label: string; probability: number }[]; model: { version: string } };
      const lin = (await (await post('/v1/classify?method=linear', bytes, 'image/png')).json()) as typeof knn;
      return { y: test.classNames![test.labels![i]!], knn, lin };
    });
    const acc = (m: 'knn' | 'lin') => rows.filter((r) => r[m].predictions[0]!.label === r.y).length / n;
    console.log(`classify: kNN ${(acc('knn') * 100).toFixed(0)}%, linear ${(acc('lin') * 100).toFixed(0)}% (chance 10%)`);
    for (const r of rows) {
      expect(r.knn.method).toBe('knn');
      expect(r.knn.model.version).toBe(version);
      const sum = r.lin.predictions.reduce((s, p) => s + p.probability, 0);
      expect(sum).toBeCloseTo(1, 4);
      expect(r.lin.predictions).toHaveLength(10);
    }
    expect(acc('knn')).toBeGreaterThan(0.4);
    expect(acc('lin')).toBeGreaterThan(0.4);
    await expectProblem(await post('/v1/classify?method=magic', await png(test, 0), 'image/png'), 400, /query\.method/);
  });

  it('delete removes an image from the gallery and the index', async () => {
    const row = 1995; // a training image the gallery does not hold, added here to be deleted
    const id = `del-${row}`;
    const bytes = await png(train, row);
    expect((await post(`/v1/images?id=${id}&label=x`, bytes, 'image/png')).status).toBe(201);
    const emb = ((await (await post('/v1/embeddings', bytes, 'image/png')).json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
    const top = async () => ((await (await postJson('/v1/search', { vector: emb, k: 1 })).json()) as { results: { id: string }[] }).results[0]!.id;
    expect(await top()).toBe(id);
    expect((await fetch(url(`/v1/images/${id}`), { method: 'DELETE' })).status).toBe(204);
    await expectProblem(await fetch(url(`/v1/images/${id}`)), 404);
    await expectProblem(await fetch(url(`/v1/images/${id}`), { method: 'DELETE' }), 404);
    expect(await top()).not.toBe(id);
    await expectProblem(await postJson('/v1/images', { base64: 'AAAA', id: '../etc/passwd' }), 400, /body\.id/);
    await expectProblem(await post('/v1/images?label=x', 'not an image', 'image/png'), 422);
  });
});

describe('models and admin', () => {
  it('lists models with state and the current one', async () => {
    const list = (await (await fetch(url('/v1/models'))).json()) as { current: string; models: { version: string; state: string; latest: boolean }[] };
    expect(list.current).toBe(version);
    expect(list.models).toContainEqual(expect.objectContaining({ version, state: 'serving', latest: true }));
    const cur = (await (await fetch(url('/v1/models/current'))).json()) as Record<string, unknown>;
    expect(cur).toMatchObject({ version, state: 'serving', representationDim: DIM, preprocessing: { inputSize: 28, channels: 1 } });
  });

  it('admin needs the bearer token', async () => {
    const none = await fetch(url('/admin/jobs'));
    await expectProblem(none, 401, /Bearer/);
    expect(none.headers.get('www-authenticate')).toMatch(/Bearer/);
    await expectProblem(await fetch(url('/admin/jobs'), { headers: { Authorization: 'Bearer wrong-token-wrong-token' } }), 401, /wrong/);
    expect((await fetch(url('/admin/jobs'), { headers: admin })).status).toBe(200);
  });

  it('retrain queues a job; jobs list, get, loss.svg, cancel', async () => {
    await expectProblem(await postJson('/admin/retrain', { dataset: { kind: 'folder' } }, admin), 400, /path/);
    await expectProblem(await postJson('/admin/retrain', { dataset: { kind: 'fashion-mnist' }, epochs: 0 }, admin), 400, /body\.epochs/);
    const res = await postJson('/admin/retrain', { dataset: { kind: 'fashion-mnist', limit: 1000 }, epochs: 1 }, admin);
    expect(res.status).toBe(202);
    const { job } = (await res.json()) as { job: { id: string; state: string } };
    expect(job.state).toBe('queued');
    expect(res.headers.get('location')).toBe(`/admin/jobs/${job.id}`);
    const list = (await (await fetch(url('/admin/jobs'), { headers: admin })).json()) as { jobs: { id: string }[] };
    expect(list.jobs.map((j) => j.id)).toContain(job.id);
    expect(((await (await fetch(url(`/admin/jobs/${job.id}`), { headers: admin })).json()) as { id: string }).id).toBe(job.id);
    const svg = await fetch(url(`/admin/jobs/${job.id}/loss.svg`), { headers: admin });
    expect(svg.headers.get('content-type')).toMatch(/image\/svg\+xml/);
    expect(await svg.text()).toMatch(/^<svg[\s\S]*<\/svg>$/);
    const cancelled = (await (await post(`/admin/jobs/${job.id}/cancel`, '', undefined, admin)).json()) as { job: { state: string } };
    expect(cancelled.job.state).toBe('cancelled');
    await expectProblem(await fetch(url('/admin/jobs/nope'), { headers: admin }), 404);
  });

  it('activate: unknown version 404; rollback to an older version swaps model and re-indexes', async () => {
    await expectProblem(await post('/admin/models/20990101T000000Z-abcdef/activate', '', undefined, admin), 404);
    const current = async () => (await (await fetch(url('/v1/models/current'))).json()) as { version: string; indexSize: number };
    const before = await current();
    expect(before.version).toBe(version);
    expect(before.indexSize).toBeGreaterThanOrEqual(galleryIdx.length);
    // A second version published without activation, then activated through the API.
    const v2 = await publishFixture(s3.current.store, { seed: 99, activate: false, parent: version });
    try {
      const res = await post(`/admin/models/${v2}/activate`, '', undefined, admin);
      expect(res.status).toBe(202);
      await api.host.refresh();
      // The whole gallery, embedded again under v2.
      expect(await current()).toMatchObject({ version: v2, indexSize: before.indexSize });
    } finally {
      // And back.
      expect((await post(`/admin/models/${version}/activate`, '', undefined, admin)).status).toBe(202);
      await api.host.refresh();
    }
    expect((await current()).version).toBe(version);
  });

  it('metrics: requests and latency by route and status, batch sizes, model, index size', async () => {
    // The requests counted below, made here.
    const image = await png(test, 0);
    expect((await post('/v1/embeddings', image, 'image/png')).status).toBe(200);
    expect((await post('/v1/embeddings', 'I am plain text, not a PNG', 'image/png')).status).toBe(422);
    expect((await post('/v1/search?k=3', image, 'image/png')).status).toBe(200);
    const { indexSize } = (await (await fetch(url('/v1/models/current'))).json()) as { indexSize: number };
    const text = await (await fetch(url('/metrics'))).text();
    expect(text).toMatch(/http_requests_total\{method="POST",route="\/v1\/embeddings",status="200"\} [1-9]\d*/);
    expect(text).toMatch(/http_requests_total\{method="POST",route="\/v1\/embeddings",status="422"\} [1-9]\d*/);
    expect(text).toMatch(/http_request_duration_seconds_bucket\{method="POST",route="\/v1\/search",status="200",le="0.1"\} \d+/);
    expect(text).toMatch(/embed_batch_size_count [1-9]\d*/);
    expect(text).toMatch(new RegExp(`model_info\\{runtime="[^"]+",version="${version}"\\} 1`));
    expect(text).toMatch(new RegExp(`gallery_index_size\\{version="${version}"\\} ${indexSize}\\b`));
    expect(text).toMatch(/model_load_failures_total/);
  });
});
