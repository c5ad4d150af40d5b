import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointSource } from '../api/checkpoint-source.js';
import type { ModelSource } from '../api/model-source.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { activateVersion } from '../shared/checkpoint/publish.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { png, publishFixture } from './helpers/api-fixtures.js';
import { until } from './helpers/poll.js';
import { withLocalS3 } from './helpers/s3.js';

/**
 * docs/RELIABILITY.md, "no lost gallery writes" and "bounded staleness" across a model swap. The model
 * source is the real one (checkpoints in s3rver) with a gate the test opens: the next model's first forward
 * pass waits until the test has written to the gallery, so the writes land while the new index is being
 * built, after it listed the gallery. Every wait is for an observable state, never for a time.
 */
const s3 = withLocalS3();
let pngs: Uint8Array<ArrayBuffer>[];
const servers: ApiServer[] = [];

beforeAll(async () => {
  await tf.setBackend('wasm');
  const ds = await loadFashionMnist('test', { limit: 10 });
  pngs = await Promise.all(Array.from({ length: 10 }, (_, i) => png(ds, i)));
}, 120_000);

afterAll(async () => {
  for (const s of servers) await s.close();
});

/** checkpointSource, except that `hold(version)` makes that version's first forward pass wait for `open()`. */
function gatedSource(store: ObjectStore) {
  const base = checkpointSource(store);
  let held: string | null = null;
  let reached!: () => void;
  const reachedP = new Promise<void>((r) => (reached = r));
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const source: ModelSource = {
    ...base,
    async load(version) {
      const m = await base.load(version);
      if (version !== held) return m;
      let first = true;
      return {
        ...m,
        forward: async (input: Float32Array, n: number) => {
          if (first) {
            first = false;
            reached();
            await opened;
          }
          return m.forward(input, n);
        },
      };
    },
  };
  return { source, hold: (v: string) => void (held = v), reached: reachedP, open };
}

async function start(store: ObjectStore, models: ModelSource, pollMs: number): Promise<ApiServer> {
  const s = await startTestApi({ store, models, logger: createMemoryLogger(), waitForModel: true, settings: { POLL_INTERVAL_MS: pollMs, BATCH_WAIT_MS: 2 } });
  servers.push(s);
  return s;
}

const post = (api: ApiServer, path: string, body: Uint8Array<ArrayBuffer>) => fetch(`${api.url}${path}`, { method: 'POST', body, headers: { 'Content-Type': 'image/png' } });
const searchById = (api: ApiServer, id: string) =>
  fetch(`${api.url}/v1/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id, k: 3 }) });

describe('gallery writes across a model swap', () => {
  it('an add and a delete made while the next model re-indexes the gallery are both in its index after the swap', async () => {
    const store = s3.current.store;
    const v1 = await publishFixture(store, { seed: 21, activate: true });
    const gate = gatedSource(store);
    const api = await start(store, gate.source, 50);
    for (let i = 0; i < 6; i++) expect((await post(api, `/v1/images?id=g-${i}`, pngs[i]!)).status).toBe(201);

    const v2 = await publishFixture(store, { seed: 22, activate: false, parent: v1 });
    gate.hold(v2);
    await activateVersion(store, v2);
    await gate.reached; // v2 is loaded and has listed the gallery; its index is being built

    const add = await post(api, '/v1/images?id=mid', pngs[8]!);
    expect(add.status).toBe(201);
    expect(((await add.json()) as { model: { version: string } }).model.version).toBe(v1); // still v1 serving
    expect((await fetch(`${api.url}/v1/images/g-1`, { method: 'DELETE' })).status).toBe(204);
    gate.open();

    await until('v2 serving', async () => {
      const r = (await (await fetch(`${api.url}/readyz`)).json()) as { model?: { version: string } };
      return r.model?.version === v2;
    }, { intervalMs: 20 });
    const found = await searchById(api, 'mid');
    expect(found.status).toBe(200);
    expect(((await found.json()) as { model: { version: string } }).model.version).toBe(v2);
    const byImage = (await (await post(api, '/v1/search?k=1', pngs[8]!)).json()) as { model: { version: string }; results: { id: string; score: number }[] };
    expect(byImage.model.version).toBe(v2);
    expect(byImage.results[0]).toMatchObject({ id: 'mid' });
    expect(byImage.results[0]!.score).toBeCloseTo(1, 4); // embedded by v2, not carried over from v1
    expect((await searchById(api, 'g-1')).status).toBe(404);
    const ready = (await (await fetch(`${api.url}/readyz`)).json()) as { indexSize: number };
    expect(ready.indexSize).toBe(6); // g-0, g-2..g-5, mid
  }, 120_000);
});

describe('bounded staleness', () => {
  it('a poll that starts after models/latest.json moves serves the new version when it returns', async () => {
    const store = new MemoryStore();
    const v1 = await publishFixture(store, { seed: 31, activate: true });
    // No background poll in the way: the test makes the polls itself.
    const api = await start(store, checkpointSource(store), 3_600_000);
    expect(api.host.current?.version).toBe(v1);
    const v2 = await publishFixture(store, { seed: 32, activate: true, parent: v1 });
    // refresh() joins a poll already running (which may have read latest.json before it moved); the
    // second one starts after the move.
    await api.host.refresh();
    await api.host.refresh();
    expect(api.host.current?.version).toBe(v2);
    const emb = await post(api, '/v1/embeddings', pngs[0]!);
    expect(((await emb.json()) as { model: { version: string } }).model.version).toBe(v2);
  }, 120_000);
});
