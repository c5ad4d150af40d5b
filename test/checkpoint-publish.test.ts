import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCheckpointFiles, type OpenedCheckpoint } from '../shared/checkpoint/format.js';
import { CheckpointError, newVersionId, versionPrefix } from '../shared/checkpoint/manifest.js';
import {
  activateVersion,
  listVersions,
  loadCheckpoint,
  publishCheckpoint,
  readLatest,
  VersionExistsError,
} from '../shared/checkpoint/publish.js';
import { storeIOHandler } from '../shared/checkpoint/store-io.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { fashionBatch, fields, head, smallBackbone } from './helpers/checkpoint-fixtures.js';
import { withLocalS3 } from './helpers/s3.js';

const s3 = withLocalS3();
let x: tf.Tensor4D;
beforeAll(() => {
  x = fashionBatch(16).x;
});
afterAll(() => x.dispose());

/** Build and publish a checkpoint of a fresh small backbone; returns the model too (caller disposes). */
async function publishNew(
  store: ObjectStore,
  opts: { activate: boolean; seed?: number; version?: string; parent?: string | null; rejected?: string },
) {
  const model = smallBackbone(opts.seed ?? 1);
  const { files, manifest } = await buildCheckpointFiles({
    model,
    linearHead: head(),
    manifest: fields({
      version: opts.version ?? newVersionId(),
      parent: opts.parent ?? null,
      ...(opts.rejected ? { state: 'rejected' as const, rejectedReason: opts.rejected } : {}),
    }),
  });
  const result = await publishCheckpoint(store, files, { activate: opts.activate });
  return { model, files, manifest, result };
}

const outputs = (m: tf.LayersModel): Float32Array => tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);

describe('publish and verified load on a real s3rver', () => {
  it('round-trips bit-exact: weights.bin bytes, every weight, the model output', async () => {
    const store = s3.current.store;
    const pub = await publishNew(store, { activate: true });
    const latest = await readLatest(store);
    expect(latest?.version).toBe(pub.manifest.version);
    expect(latest?.manifestEtag).toBe(pub.result.manifestEtag);

    const stored = await store.get(`${versionPrefix(pub.manifest.version)}weights.bin`);
    expect(stored && 'body' in stored && Buffer.from(stored.body).equals(Buffer.from(pub.files.get('weights.bin')!))).toBe(true);

    const loaded = await loadCheckpoint(store, latest!.version);
    expect(loaded.manifest).toEqual(pub.manifest);
    expect(loaded.linearHead).toEqual(head());
    const a = pub.model.getWeights();
    const b = loaded.model.getWeights();
    expect(b).toHaveLength(a.length);
    a.forEach((w, i) => expect(Buffer.from(b[i]!.dataSync().buffer).equals(Buffer.from(w.dataSync().buffer))).toBe(true));
    expect(outputs(loaded.model)).toEqual(outputs(pub.model));
    pub.model.dispose();
    loaded.model.dispose();
  });

  it('refuses each missing, truncated or corrupted file by name, and the current model keeps serving', async () => {
    const store = s3.current.store;
    const good = await publishNew(store, { activate: true, seed: 3 });
    const serving: OpenedCheckpoint = await loadCheckpoint(store, good.manifest.version);
    const expected = outputs(serving.model);

    const cases: Array<[string, string, (b: Uint8Array) => Uint8Array | null, RegExp]> = [];
    for (const name of ['model.json', 'weights.bin', 'linear-head.json']) {
      cases.push([`missing ${name}`, name, () => null, /is missing/]);
      cases.push([`truncated ${name}`, name, (b) => b.slice(0, b.length - 1), /truncated/]);
      cases.push([
        `corrupt ${name}`,
        name,
        (b) => {
          const c = b.slice();
          c[c.length - 2]! ^= 0x80;
          return c;
        },
        /corrupt: sha256/,
      ]);
    }
    cases.push(['missing manifest.json', 'manifest.json', () => null, /is missing/]);
    cases.push(['truncated manifest.json', 'manifest.json', (b) => b.slice(0, 40), /not valid JSON/]);

    for (const [label, name, damage, reason] of cases) {
      const bad = await publishNew(store, { activate: false, seed: 5, parent: good.manifest.version });
      bad.model.dispose();
      const key = `${versionPrefix(bad.manifest.version)}${name}`;
      const damaged = damage(bad.files.get(name)!);
      if (damaged === null) await store.delete(key);
      else await store.put(key, damaged);
      const before = tf.memory().numTensors;
      const err = await loadCheckpoint(store, bad.manifest.version).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, label).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).file, label).toBe(name);
      expect((err as Error).message, label).toMatch(reason);
      expect(tf.memory().numTensors, label).toBe(before);
      expect(outputs(serving.model), label).toEqual(expected); // previous model unaffected
    }
    serving.model.dispose();
    good.model.dispose();
  });

  it('a reader looking at latest.json between any two writes of a publish only ever sees complete, loadable versions', async () => {
    const bucket = s3.current.store;
    const seen = new Map<string, 'ok' | string>();
    let reads = 0;
    const reader = async () => {
      reads++;
      const latest = await readLatest(bucket);
      if (latest && !seen.has(latest.version)) {
        // Check every manifest-listed file exists and verifies, right now, with nothing cached.
        try {
          const c = await loadCheckpoint(bucket, latest.version);
          c.model.dispose();
          seen.set(latest.version, 'ok');
        } catch (err) {
          seen.set(latest.version, String(err));
        }
      }
    };
    // The reader runs before and after every write the publisher makes, so it sees each intermediate state
    // of the bucket, not only the ones a free-running poller happens to land on.
    const store = new Proxy(bucket, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver) as unknown;
        if (typeof v !== 'function') return v;
        const f = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
        return key === 'put' || key === 'delete'
          ? async (...args: unknown[]) => {
              await reader();
              const out = await f(...args);
              await reader();
              return out;
            }
          : f;
      },
    });
    const published: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await publishNew(store, { activate: true, seed: 10 + i });
      p.model.dispose();
      published.push(p.manifest.version);
    }
    expect(reads).toBeGreaterThan(4 * 4); // several files, the manifest and the pointer per publish
    expect([...seen.values()].every((v) => v === 'ok'), JSON.stringify([...seen])).toBe(true);
    // Each pointer move was read at once, so every version published here was seen (and loaded).
    for (const v of published) expect(seen.get(v), v).toBe('ok');
  });

  it('refuses to publish over an existing version and leaves it untouched', async () => {
    const store = s3.current.store;
    const first = await publishNew(store, { activate: false, seed: 20 });
    const other = smallBackbone(21);
    const { files } = await buildCheckpointFiles({ model: other, manifest: fields({ version: first.manifest.version }) });
    await expect(publishCheckpoint(store, files, { activate: true })).rejects.toBeInstanceOf(VersionExistsError);
    const loaded = await loadCheckpoint(store, first.manifest.version);
    expect(outputs(loaded.model)).toEqual(outputs(first.model));
    [first.model, other, loaded.model].forEach((m) => m.dispose());
  });

  it('rollback moves the pointer; unknown and rejected versions are refused unless forced', async () => {
    const store = s3.current.store;
    const v1 = await publishNew(store, { activate: true, seed: 30 });
    const v2 = await publishNew(store, { activate: true, seed: 31, parent: v1.manifest.version });
    const rejected = await publishNew(store, { activate: false, seed: 32, rejected: 'linear_top1 below the parent' });
    [v1, v2, rejected].forEach((p) => p.model.dispose());
    expect((await readLatest(store))?.version).toBe(v2.manifest.version);

    const back = await activateVersion(store, v1.manifest.version);
    expect(back.version).toBe(v1.manifest.version);
    expect(await readLatest(store)).toEqual(back);

    await expect(activateVersion(store, newVersionId())).rejects.toThrow(/no version/);
    await expect(activateVersion(store, 'not-a-version')).rejects.toBeInstanceOf(CheckpointError);
    await expect(activateVersion(store, rejected.manifest.version)).rejects.toThrow(/rejected \(linear_top1 below the parent\)/);
    expect((await readLatest(store))?.version).toBe(v1.manifest.version);
    await activateVersion(store, rejected.manifest.version, { force: true });
    expect((await readLatest(store))?.version).toBe(rejected.manifest.version);

    const broken = newVersionId();
    await store.put(`${versionPrefix(broken)}manifest.json`, '{"schemaVersion": 1}');
    const versions = (await listVersions(store)).map((m) => m.version);
    expect(versions).not.toContain(broken); // unreadable manifests are skipped, not fatal
    expect(versions).toEqual([...versions].sort());
    for (const v of [v1, v2, rejected]) expect(versions).toContain(v.manifest.version);
  });

  it('the store IOHandler saves a LayersModel to the store and tfjs loads it back', async () => {
    const store = s3.current.store;
    const m = smallBackbone(40);
    await m.save(storeIOHandler(store, 'scratch/io-handler'));
    const back = await tf.loadLayersModel(storeIOHandler(store, 'scratch/io-handler/'));
    expect(outputs(back)).toEqual(outputs(m));
    await expect(tf.loadLayersModel(storeIOHandler(store, 'scratch/nothing-here'))).rejects.toThrow(/no model.json/);
    m.dispose();
    back.dispose();
  });
});

describe('publish on a store that enforces conditional writes', () => {
  it('two concurrent publishes of the same version: exactly one wins', async () => {
    const store = createMemoryStore();
    const version = newVersionId();
    const models = [smallBackbone(50), smallBackbone(51)];
    const builds = await Promise.all(models.map((model) => buildCheckpointFiles({ model, manifest: fields({ version }) })));
    const results = await Promise.allSettled(builds.map((b) => publishCheckpoint(store, b.files, { activate: true })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(loser.reason).toBeInstanceOf(VersionExistsError);
    const winner = results.findIndex((r) => r.status === 'fulfilled');
    const loaded = await loadCheckpoint(store, version);
    expect(outputs(loaded.model)).toEqual(outputs(models[winner]!));
    models.forEach((m) => m.dispose());
    loaded.model.dispose();
  });
});
