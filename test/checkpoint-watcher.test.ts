import { describe, expect, it } from 'vitest';
import { buildCheckpointFiles } from '../shared/checkpoint/format.js';
import { newVersionId, type LatestPointer } from '../shared/checkpoint/manifest.js';
import { activateVersion, loadCheckpoint, publishCheckpoint } from '../shared/checkpoint/publish.js';
import { watchLatest, type WatcherTimers } from '../shared/checkpoint/watcher.js';
import { startLocalS3 } from '../shared/node/local-s3.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { fields, smallBackbone } from './helpers/checkpoint-fixtures.js';
import { until } from './helpers/poll.js';
import { startTempS3 } from './helpers/s3.js';

async function publish(store: ObjectStore, activate = true): Promise<string> {
  const model = smallBackbone(Math.floor(Math.random() * 1000));
  const { files, manifest } = await buildCheckpointFiles({ model, manifest: fields({ version: newVersionId() }) });
  model.dispose();
  await publishCheckpoint(store, files, { activate });
  return manifest.version;
}

const POLL = { intervalMs: 10 };

/** The store, counting the watcher's reads of models/latest.json (its polls). */
function countingPolls(store: ObjectStore): { store: ObjectStore; polls: () => number } {
  let polls = 0;
  const counted = new Proxy(store, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(target);
      return key === 'get'
        ? (...args: unknown[]) => {
            if (args[0] === 'models/latest.json') polls++;
            return f(...args);
          }
        : f;
    },
  });
  return { store: counted, polls: () => polls };
}

describe('watcher on a real s3rver', () => {
  it('reports each new version once, and survives the store going away and coming back', async () => {
    const s3 = await startTempS3();
    let restarted: Awaited<ReturnType<typeof startLocalS3>> | undefined;
    const seen: string[] = [];
    const errors: number[] = [];
    const counted = countingPolls(s3.store);
    const watcher = watchLatest({
      store: counted.store,
      intervalMs: 20,
      maxBackoffMs: 160,
      onNewVersion: async (p) => {
        // What the API does: load and verify before switching.
        const c = await loadCheckpoint(s3.store, p.version);
        c.model.dispose();
        seen.push(p.version);
      },
      onError: (_err, retryIn) => errors.push(retryIn),
    });
    try {
      await until('3 polls', () => counted.polls() >= 3, POLL); // polls with no pointer yet: nothing reported
      expect(seen).toEqual([]);
      const v1 = await publish(s3.store);
      await until('v1 reported', () => seen.length === 1, POLL);
      const after = counted.polls();
      await until('3 more polls', () => counted.polls() >= after + 3, POLL); // 304 polls: v1 is not reported again
      expect(seen).toEqual([v1]);
      const v2 = await publish(s3.store);
      await until('v2 reported', () => seen.length === 2, POLL);
      expect(seen).toEqual([v1, v2]);

      // The store goes away: errors with growing back-off, capped.
      const port = Number(new URL(s3.endpoint).port);
      await s3.close();
      await until('4 errors', () => errors.length >= 4, POLL);
      expect(errors.slice(0, 4)).toEqual([40, 80, 160, 160]);
      expect(watcher.failures).toBeGreaterThanOrEqual(4);

      // It comes back (same port, same data) with a new version published meanwhile.
      restarted = await startLocalS3({ dir: s3.dir, port });
      const v3 = await publish(restarted.store);
      await until('v3 reported', () => seen.length === 3, POLL);
      expect(seen).toEqual([v1, v2, v3]);
      expect(watcher.failures).toBe(0);
      expect(watcher.current?.version).toBe(v3);
    } finally {
      await watcher.stop();
      await restarted?.close();
      await s3.cleanup();
    }
  });
});

/** Manually driven timers: the test decides when each scheduled poll runs. */
function manualTimers() {
  const pending: Array<{ fn: () => void; ms: number; id: number }> = [];
  let next = 0;
  const timers: WatcherTimers = {
    setTimeout(fn, ms) {
      const id = next++;
      pending.push({ fn, ms, id });
      return id;
    },
    clearTimeout(h) {
      const i = pending.findIndex((p) => p.id === h);
      if (i >= 0) pending.splice(i, 1);
    },
  };
  const settled = async () => {
    while (pending.length === 0) await new Promise((r) => setImmediate(r));
    expect(pending).toHaveLength(1);
  };
  return {
    timers,
    pending,
    /** Run the one scheduled poll and let it finish; returns the delay it had been scheduled with. */
    async fire(): Promise<number> {
      // A poll ends by scheduling the next one: that, not a pause of some length, says it has finished.
      await settled();
      const p = pending.shift()!;
      p.fn();
      await settled();
      return p.ms;
    },
  };
}

describe('watcher logic (memory store, injected timers)', () => {
  it('uses conditional GETs, reports rollbacks, skips the version already served', async () => {
    const store = createMemoryStore();
    const v1 = await publish(store);
    const seen: LatestPointer[] = [];
    const t = manualTimers();
    const w = watchLatest({ store, intervalMs: 1000, onNewVersion: (p) => void seen.push(p), initialVersion: v1, timers: t.timers });
    expect(await t.fire()).toBe(1000);
    expect(seen).toEqual([]); // v1 is already served
    const v2 = await publish(store);
    expect(await t.fire()).toBe(1000);
    expect(seen.map((p) => p.version)).toEqual([v2]);
    await activateVersion(store, v1); // rollback
    await t.fire();
    await t.fire();
    expect(seen.map((p) => p.version)).toEqual([v2, v1]);
    await w.stop();
    expect(t.pending).toHaveLength(0);
  });

  it('retries a version whose handler failed, with back-off, until it succeeds', async () => {
    const store = createMemoryStore();
    const v1 = await publish(store);
    let attempts = 0;
    const errors: number[] = [];
    const t = manualTimers();
    const w = watchLatest({
      store,
      intervalMs: 100,
      maxBackoffMs: 1000,
      timers: t.timers,
      onNewVersion: () => {
        attempts++;
        if (attempts < 3) throw new Error('checkpoint failed to load');
      },
      onError: (_e, ms) => errors.push(ms),
    });
    await t.fire(); // attempt 2 (the first ran at start)
    await t.fire(); // attempt 3 succeeds
    await t.fire(); // unchanged: no new attempt
    expect(attempts).toBe(3);
    expect(errors).toEqual([200, 400]);
    expect(w.current?.version).toBe(v1);
    await w.stop();
  });

  it('reports an invalid pointer once and keeps polling', async () => {
    const store = createMemoryStore();
    const errors: unknown[] = [];
    const t = manualTimers();
    const seen: string[] = [];
    const w = watchLatest({ store, intervalMs: 50, timers: t.timers, onNewVersion: (p) => void seen.push(p.version), onError: (e) => errors.push(e) });
    await store.put('models/latest.json', '{"version": "garbage"}');
    await t.fire(); // reads the bad pointer
    await t.fire(); // 304: not reported again
    await t.fire();
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/latest.json is invalid/);
    const v = await publish(store);
    await t.fire();
    expect(seen).toEqual([v]);
    await w.stop();
  });
});
