import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredScope } from '../api/auth.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { pca } from '../shared/eval/pca.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryStore, type MemoryStore } from '../shared/store/memory-store.js';
import { DIM, pool, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * GET /v1/gallery/map on the real Node server over HTTP: 503 before a model, then one point per gallery
 * image under the serving version, the PCA of the embeddings the API itself returns, and the same map on
 * every call; query errors as problem+json.
 */
type GalleryMap = { model: { version: string }; total: number; explainedVariance: number[]; points: { id: string; x: number; y: number; label?: string }[] };

const PER_CLASS = 4;
const CLASSES = [0, 1, 5, 7];

let store: MemoryStore;
let api: ApiServer;
let train: ImageDataset;
/** id → [dataset index, label or undefined]. */
const gallery = new Map<string, { i: number; label?: string }>();

beforeAll(async () => {
  await tf.setBackend('wasm');
  train = await loadFashionMnist('train', { limit: 300 });
  store = createMemoryStore();
  api = await startTestApi({
    store,
    waitForModel: true,
    logger: createMemoryLogger(),
    settings: { POLL_INTERVAL_MS: 60_000 },
  });
}, 120_000);

afterAll(async () => {
  await api?.close();
});

const url = (p: string) => `${api.url}${p}`;
const getMap = async (query = ''): Promise<{ res: Response; body: GalleryMap }> => {
  const res = await fetch(url(`/v1/gallery/map${query}`));
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return { res, body: JSON.parse(text) as GalleryMap };
};

async function expectProblem(res: Response, status: number, detail?: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:vicreg:problem:/), detail: expect.any(String) });
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

async function add(id: string, i: number, label?: string): Promise<void> {
  const form = new FormData();
  form.append('image', new Blob([await png(train, i)], { type: 'image/png' }), `${id}.png`);
  form.append('id', id);
  if (label !== undefined) form.append('label', label);
  const res = await fetch(url('/v1/images'), { method: 'POST', body: form });
  expect(res.status, await res.text()).toBe(201);
  gallery.set(id, { i, ...(label !== undefined ? { label } : {}) });
}

describe('GET /v1/gallery/map', () => {
  let version: string;

  it('is a read route, documented with its query and response', async () => {
    expect(requiredScope('GET', '/v1/gallery/map')).toBe('read');
    const doc = (await (await fetch(url('/openapi.json'))).json()) as {
      paths: Record<string, { get?: { operationId: string; parameters: { name: string }[]; responses: Record<string, unknown> } }>;
      components: { schemas: Record<string, unknown> };
    };
    const op = doc.paths['/v1/gallery/map']!.get!;
    expect(op.operationId).toBe('getGalleryMap');
    expect(op.parameters.map((p) => p.name).sort()).toEqual(['label', 'limit']);
    expect(Object.keys(op.responses).sort()).toEqual(['200', '400', '503']);
    expect(doc.components.schemas).toHaveProperty('GalleryMap');
  });

  it('answers 503 problem+json while no model serves', async () => {
    await expectProblem(await fetch(url('/v1/gallery/map')), 503);
  });

  it('once a model serves, an empty gallery is an empty map', async () => {
    version = await publishFixture(store, { seed: 11, activate: true });
    await api.host.refresh();
    const { res, body } = await getMap();
    expect(res.headers.get('x-model-version')).toBe(version);
    expect(body).toEqual({ model: { version }, total: 0, explainedVariance: [0, 0], points: [] });
  });

  it('bad query parameters are 400 problem+json naming the field', async () => {
    for (const q of ['limit=0', 'limit=5001', 'limit=2.5', 'limit=many', 'label=']) {
      const p = await expectProblem(await fetch(url(`/v1/gallery/map?${q}`)), 400);
      expect((p.errors as { field: string }[]).map((e) => e.field)).toEqual([`query.${q.split('=')[0]}`]);
    }
  });

  it('has one point per gallery image, with its id and label, the PCA of the API’s own embeddings', async () => {
    const picks: { i: number; label: string }[] = [];
    for (const y of CLASSES) {
      let n = 0;
      for (let i = 0; i < train.n && n < PER_CLASS; i++) if (train.labels![i] === y) (n++, picks.push({ i, label: train.classNames![y]! }));
    }
    await pool(picks, 4, ({ i, label }) => add(`fm-${String(i).padStart(4, '0')}`, i, label));
    await add('unlabelled', 250);

    const { res, body } = await getMap();
    expect(res.headers.get('x-model-version')).toBe(version);
    expect(body.model).toEqual({ version });
    expect(body.total).toBe(gallery.size);
    expect(body.points.map((p) => p.id)).toEqual([...gallery.keys()].sort());
    for (const p of body.points) {
      expect(p.label).toBe(gallery.get(p.id)!.label);
      expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
    }
    expect('label' in body.points.find((p) => p.id === 'unlabelled')!).toBe(false);
    const [a, b] = body.explainedVariance as [number, number];
    expect(a).toBeGreaterThan(b);
    expect(b).toBeGreaterThan(0);
    expect(a + b).toBeLessThanOrEqual(1);

    // The same projection, computed here from POST /v1/embeddings of the same images (L2-normalised).
    const vectors = await pool(body.points, 4, async (p) => {
      const r = await fetch(url('/v1/embeddings'), { method: 'POST', body: await png(train, gallery.get(p.id)!.i), headers: { 'Content-Type': 'image/png' } });
      const e = ((await r.json()) as { data: { embedding: number[] }[] }).data[0]!.embedding;
      const norm = Math.hypot(...e);
      return e.map((x) => x / norm);
    });
    expect(vectors[0]).toHaveLength(DIM);
    const local = pca(vectors, DIM);
    const scale = Math.max(...body.points.map((p) => Math.hypot(p.x, p.y)));
    body.points.forEach((p, j) => {
      expect(Math.abs(p.x - local.coords[j]![0]!)).toBeLessThan(1e-3 * scale);
      expect(Math.abs(p.y - local.coords[j]![1]!)).toBeLessThan(1e-3 * scale);
    });
    expect(a).toBeCloseTo(local.explained[0]!, 3);
    expect(b).toBeCloseTo(local.explained[1]!, 3);

    // Deterministic: the same gallery gives the same map, not a mirror image of it.
    expect((await getMap()).body).toEqual(body);
  });

  it('filters by label (fitting the projection on those alone) and samples evenly past the limit', async () => {
    const label = train.classNames![CLASSES[1]!]!;
    const { body: one } = await getMap(`?label=${encodeURIComponent(label)}`);
    const wanted = [...gallery].filter(([, g]) => g.label === label).map(([id]) => id).sort();
    expect(one.total).toBe(PER_CLASS);
    expect(one.points.map((p) => p.id)).toEqual(wanted);
    expect(one.points.every((p) => p.label === label)).toBe(true);
    expect((await getMap('?label=no-such-label')).body).toMatchObject({ total: 0, points: [], explainedVariance: [0, 0] });

    const { body: few } = await getMap('?limit=4');
    expect(few.total).toBe(gallery.size);
    const all = [...gallery.keys()].sort();
    expect(few.points.map((p) => p.id)).toEqual([0, 1, 2, 3].map((k) => all[Math.floor((k * all.length) / 4)]));
  });

  it('follows deletes, and the serving version after a swap', async () => {
    const gone = [...gallery.keys()].sort()[0]!;
    expect((await fetch(url(`/v1/images/${gone}`), { method: 'DELETE' })).status).toBe(204);
    gallery.delete(gone);
    const { body } = await getMap();
    expect(body.points.map((p) => p.id)).toEqual([...gallery.keys()].sort());

    const next = await publishFixture(store, { seed: 12, activate: true, parent: version });
    await api.host.refresh();
    const { res, body: after } = await getMap();
    expect(res.headers.get('x-model-version')).toBe(next);
    expect(after.model.version).toBe(next);
    expect(after.points.map((p) => p.id)).toEqual(body.points.map((p) => p.id));
    expect(after.points.map((p) => p.x)).not.toEqual(body.points.map((p) => p.x));
  });
});
