import { describe, expect, it } from 'vitest';
import type { DurableObjectStorage } from '../api/edge/cf-types.js';
import { DurableIndex } from '../api/edge/edge-host.js';
import { GalleryIndexCore, type FillEntry, type ItemMeta, type VersionRef, type VersionSummary } from '../api/edge/gallery-index.js';
import type { GalleryIndexStub } from '../api/edge/gallery-index-do.js';
import type { IndexEntry } from '../shared/index/vector-index.js';

// The gallery-index Durable Object's logic (GalleryIndexCore) over an in-memory storage that behaves like
// Durable Object storage: values are structured-cloned in and out, list() is sorted by key, and put/delete
// refuse more than 128 keys per call, as Cloudflare does. Vectors are deterministic; time is passed in.

const LIMIT = 128;

type Op = { op: 'get' | 'put' | 'delete' | 'list'; keys: string[]; prefix?: string };

class MemoryStorage implements DurableObjectStorage {
  readonly data = new Map<string, unknown>();
  readonly log: Op[] = [];

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.log.push({ op: 'get', keys: [key] });
    const v = this.data.get(key);
    return v === undefined ? undefined : (structuredClone(v) as T);
  }

  async put(entries: Record<string, unknown>): Promise<void> {
    const keys = Object.keys(entries);
    if (keys.length > LIMIT) throw new RangeError(`put: ${keys.length} keys in one call; Durable Object storage takes at most ${LIMIT}`);
    this.log.push({ op: 'put', keys });
    for (const k of keys) this.data.set(k, structuredClone(entries[k]));
  }

  async delete(keys: string[]): Promise<number> {
    if (keys.length > LIMIT) throw new RangeError(`delete: ${keys.length} keys in one call; Durable Object storage takes at most ${LIMIT}`);
    this.log.push({ op: 'delete', keys: [...keys] });
    let n = 0;
    for (const k of keys) if (this.data.delete(k)) n++;
    return n;
  }

  async list<T = unknown>(options?: { prefix?: string }): Promise<Map<string, T>> {
    const prefix = options?.prefix ?? '';
    this.log.push({ op: 'list', keys: [], prefix });
    const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
    return new Map(keys.map((k) => [k, structuredClone(this.data.get(k)) as T]));
  }

  keysWith(prefix: string): string[] {
    return [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort();
  }

  ops(op: Op['op']): Op[] {
    return this.log.filter((o) => o.op === op);
  }
}

const DIM = 4;
const ref = (version: string, dimension = DIM): VersionRef => ({ version, dimension });
const V1 = ref('v1');
const V2 = ref('v2');
const V3 = ref('v3');

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function item(id: string, revision = 'r1', createdMs = 0, extra: Partial<ItemMeta> = {}): ItemMeta {
  return { id, revision, createdAt: at(createdMs), ...extra };
}

/** A deterministic, nonzero vector for (id, revision, version): what "embedding" that item would give. */
function vec(id: string, revision = 'r1', version = 'v1'): Float32Array {
  let h = 2166136261;
  for (const c of `${version}/${id}/${revision}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const out = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) {
    out[i] = ((h >>> (i * 8)) & 0xff) / 32 - 4 + 0.25;
  }
  return out;
}

const fillOf = (it: ItemMeta, version: string): FillEntry => ({ id: it.id, revision: it.revision, vector: vec(it.id, it.revision, version) });
const q = new Float32Array([1, 0.5, -0.25, 2]);

function expectVectorClose(actual: Float32Array | undefined, expected: Float32Array): void {
  expect(actual).toBeInstanceOf(Float32Array);
  expect(actual!.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual![i]).toBeCloseTo(expected[i]!, 4);
}

async function newCore(storage = new MemoryStorage(), opts: Partial<ConstructorParameters<typeof GalleryIndexCore>[1]> = {}) {
  const core = new GalleryIndexCore(storage, { keepVersions: 3, ...opts });
  await core.load();
  return { core, storage };
}

/** Items upserted (embedded) under `version`, in order. */
async function seed(core: GalleryIndexCore, r: VersionRef, items: ItemMeta[]): Promise<void> {
  for (const it of items) await core.upsert(r, it, vec(it.id, it.revision, r.version));
}

const ids = (items: { id: string }[]) => items.map((i) => i.id);

describe('GalleryIndexCore: read-your-writes across model versions', () => {
  it('an item upserted under v1 is pending in an open v2 until filled, then queryable there', async () => {
    const { core } = await newCore();
    expect(await core.open(V1)).toEqual({ size: 0, pending: 0 });
    expect(await core.open(V2)).toEqual({ size: 0, pending: 0 });

    const a = item('a', 'r1', 0, { label: 'cat', metadata: { n: 1 } });
    expect(await core.upsert(V1, a, vec('a', 'r1', 'v1'))).toEqual({ size: 1, pending: 0 });

    expect(await core.summary(V2)).toEqual({ size: 0, pending: 1 });
    expect(await core.pendingItems(V2, 10)).toEqual([a]);
    expect(await core.query(V2, q, 5, undefined, 32)).toEqual({ pending: [a] });
    expect(await core.get(V2, 'a')).toEqual({ pending: [a] });
    expect(await core.has(V2, 'a')).toBe(false);
    expect(await core.ids(V2)).toEqual([]);

    // v1 has it already.
    const g1 = await core.get(V1, 'a');
    expect('ok' in g1 && g1.ok?.label).toBe('cat');
    expectVectorClose(('ok' in g1 && g1.ok?.vector) || undefined, vec('a', 'r1', 'v1'));
    const q1 = await core.query(V1, vec('a', 'r1', 'v1'), 5, undefined, 32);
    expect('ok' in q1 && q1.ok.map((h) => h.id)).toEqual(['a']);

    expect(await core.fill(V2, [fillOf(a, 'v2')])).toEqual({ size: 1, pending: 0 });
    const q2 = await core.query(V2, vec('a', 'r1', 'v2'), 5, undefined, 32);
    expect('ok' in q2).toBe(true);
    if (!('ok' in q2)) return;
    expect(q2.ok).toHaveLength(1);
    expect(q2.ok[0]).toMatchObject({ id: 'a', label: 'cat', metadata: { n: 1 } });
    expect(q2.ok[0]!.score).toBeCloseTo(1, 5);
    const g2 = await core.get(V2, 'a');
    expectVectorClose(('ok' in g2 && g2.ok?.vector) || undefined, vec('a', 'r1', 'v2'));
    expect(await core.has(V2, 'a')).toBe(true);
    expect(await core.pendingItems(V2, 10)).toEqual([]);
  });

  it('a version first opened after the writes has every existing item pending', async () => {
    const { core } = await newCore();
    const items = [item('a'), item('b'), item('c')];
    await seed(core, V1, items);
    expect(await core.open(V2)).toEqual({ size: 0, pending: 3 });
    expect(ids(await core.pendingItems(V2, 10))).toEqual(['a', 'b', 'c']);
  });

  it('query hands back at most catchUp pending items, and answers once none is left', async () => {
    const { core } = await newCore();
    await core.open(V2);
    const items = ['i0', 'i1', 'i2', 'i3', 'i4'].map((id) => item(id));
    await seed(core, V1, items);

    const first = await core.query(V2, q, 10, undefined, 2);
    expect('pending' in first && ids(first.pending)).toEqual(['i0', 'i1']);
    expect(await core.pendingItems(V2, 3)).toHaveLength(3);
    await core.fill(V2, items.slice(0, 2).map((it) => fillOf(it, 'v2')));
    const second = await core.query(V2, q, 10, undefined, 2);
    expect('pending' in second && ids(second.pending)).toEqual(['i2', 'i3']);
    await core.fill(V2, items.slice(2).map((it) => fillOf(it, 'v2')));
    const done = await core.query(V2, q, 10, undefined, 2);
    expect('ok' in done && done.ok.map((h) => h.id).sort()).toEqual(['i0', 'i1', 'i2', 'i3', 'i4']);
  });

  it('query passes k and the filter to the index', async () => {
    const { core } = await newCore();
    await seed(core, V1, [item('a', 'r1', 0, { label: 'x' }), item('b', 'r1', 0, { label: 'y' }), item('c'), item('d', 'r1', 0, { label: 'x' })]);
    const byLabel = await core.query(V1, q, 10, { label: 'x' }, 32);
    expect('ok' in byLabel && byLabel.ok.map((h) => h.id).sort()).toEqual(['a', 'd']);
    const labelled = await core.query(V1, q, 10, { labelled: true, excludeIds: ['a'] }, 32);
    expect('ok' in labelled && labelled.ok.map((h) => h.id).sort()).toEqual(['b', 'd']);
    const top2 = await core.query(V1, q, 2, undefined, 32);
    expect('ok' in top2 && top2.ok).toHaveLength(2);
  });

  it('catchUp 0 answers from the index as it is while items are pending', async () => {
    const { core } = await newCore();
    await core.open(V2);
    const a = item('a');
    const b = item('b');
    await seed(core, V1, [a, b]);
    await core.fill(V2, [fillOf(a, 'v2')]); // b stays pending
    const answer = await core.query(V2, q, 10, undefined, 0);
    expect(answer).toHaveProperty('ok');
    expect('ok' in answer && answer.ok.map((h) => h.id)).toEqual(['a']);
  });

  it('entries (the gallery map) hands back pending items first, as query does, then lists the version in id order', async () => {
    const { core } = await newCore();
    await core.open(V2);
    const items = [item('c', 'r1', 0, { label: 'x' }), item('a', 'r1', 0, { label: 'y' }), item('b', 'r1', 0, { label: 'x' })];
    await seed(core, V1, items);
    const first = await core.entries(V2, undefined, 2);
    expect('pending' in first && ids(first.pending)).toEqual(['c', 'a']);
    await core.fill(V2, items.map((it) => fillOf(it, 'v2')));
    const all = await core.entries(V2, undefined, 2);
    expect('ok' in all && all.ok.total).toBe(3);
    expect('ok' in all && all.ok.entries.map((e) => [e.id, e.label])).toEqual([['a', 'y'], ['b', 'x'], ['c', 'x']]);
    const v = vec('b', 'r1', 'v2');
    const unit = Array.from(v, (x) => x / Math.hypot(...v));
    expectVectorClose('ok' in all ? all.ok.entries[1]!.vector : undefined, Float32Array.from(unit));
    const x = await core.entries(V2, { label: 'x', limit: 1 }, 2);
    expect('ok' in x && x.ok).toMatchObject({ total: 2, entries: [{ id: 'b' }] });
    // catchUp 0: as the index is, pending items left out.
    await core.upsert(V1, item('d', 'r1', 5), vec('d'));
    const asIs = await core.entries(V2, undefined, 0);
    expect('ok' in asIs && asIs.ok.entries.map((e) => e.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('DurableIndex over the core (the core stands in for the Durable Object stub)', () => {
  function durable(core: GalleryIndexCore, r: VersionRef) {
    const embedded: string[][] = [];
    const summaries: VersionSummary[] = [];
    const stub = () => core as unknown as GalleryIndexStub;
    const embed = async (items: ItemMeta[]): Promise<FillEntry[]> => {
      embedded.push(ids(items));
      return items.map((it) => fillOf(it, r.version));
    };
    return { index: new DurableIndex(stub, r, embed, (s) => summaries.push(s)), embedded, summaries };
  }

  it('a query embeds the pending items (only those) and answers with them included', async () => {
    const { core } = await newCore();
    const items = ['a', 'b', 'c', 'd'].map((id) => item(id));
    await seed(core, V1, items);
    const { index, embedded, summaries } = durable(core, V2);
    expect(await index.open()).toEqual({ size: 0, pending: 4 });
    await core.fill(V2, [fillOf(items[0]!, 'v2'), fillOf(items[2]!, 'v2')]); // a and c done elsewhere

    const hits = await index.query(vec('b', 'r1', 'v2'), 10);
    expect(embedded).toEqual([['b', 'd']]);
    expect(hits.map((h) => h.id).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(hits[0]!.id).toBe('b');
    expect(hits[0]!.score).toBeCloseTo(1, 5);
    expect(summaries.at(-1)).toEqual({ size: 4, pending: 0 });

    // Nothing pending any more: no embedding on the next query.
    await index.query(q, 2);
    expect(embedded).toHaveLength(1);
    expect(await index.size()).toBe(4);
  });

  it('a write through another version is in the next query, embedding just that item', async () => {
    const { core } = await newCore();
    await seed(core, V1, [item('a'), item('b')]);
    const { index, embedded } = durable(core, V2);
    await index.open();
    await index.query(q, 10);
    expect(embedded).toEqual([['a', 'b']]);

    const c = item('c', 'r1', 5);
    await core.upsert(V1, c, vec('c', 'r1', 'v1')); // another isolate, serving v1
    const hits = await index.query(vec('c', 'r1', 'v2'), 1);
    expect(embedded).toEqual([['a', 'b'], ['c']]);
    expect(hits.map((h) => h.id)).toEqual(['c']);
  });

  it('entries embeds the pending items and lists them with the rest (the map sees every write)', async () => {
    const { core } = await newCore();
    const items = ['a', 'b', 'c'].map((id) => item(id, 'r1', 0, { label: id === 'b' ? 'dog' : 'cat' }));
    await seed(core, V1, items);
    const { index, embedded } = durable(core, V2);
    await index.open();
    await core.fill(V2, [fillOf(items[0]!, 'v2')]);
    const listing = await index.entries({ limit: 10 });
    expect(embedded).toEqual([['b', 'c']]);
    expect(listing.total).toBe(3);
    expect(listing.entries.map((e) => [e.id, e.label])).toEqual([['a', 'cat'], ['b', 'dog'], ['c', 'cat']]);
    await core.upsert(V1, item('d', 'r1', 5), vec('d')); // another isolate, serving v1
    expect((await index.entries({ label: 'cat' })).entries.map((e) => e.id)).toEqual(['a', 'c']);
    expect(embedded).toEqual([['b', 'c'], ['d']]);
  });

  it('get of a pending id embeds just that item and returns its entry', async () => {
    const { core } = await newCore();
    await seed(core, V1, [item('a'), item('b', 'r1', 0, { label: 'dog' })]);
    const { index, embedded } = durable(core, V2);
    await index.open();
    const got = (await index.get('b')) as IndexEntry;
    expect(embedded).toEqual([['b']]);
    expect(got.id).toBe('b');
    expect(got.label).toBe('dog');
    expectVectorClose(got.vector, vec('b', 'r1', 'v2'));
    expect(await index.get('nope')).toBeUndefined();
    expect(embedded).toEqual([['b']]);
    expect(await index.has('a')).toBe(false); // still pending; has/ids do not catch up
    expect(await index.ids()).toEqual(['b']);
  });

  // DurableIndex's last round asks with catchUp 0, "answer as it is", so a query never waits on more than
  // 8 rounds × 32 pending items.
  it('a query with more pending items than its catch-up rounds cover answers from the index as it is', async () => {
    const { core } = await newCore();
    const items = Array.from({ length: 300 }, (_, i) => item(`p${String(i).padStart(3, '0')}`));
    await core.sync(items, T0);
    const { index, embedded } = durable(core, V2);
    await index.open();
    const hits = await index.query(q, 5);
    expect(embedded.flat()).toHaveLength(8 * 32);
    expect(hits).toHaveLength(5);
  });
});

describe('fill', () => {
  it('ignores a vector for a stale revision (the item was replaced meanwhile): it stays pending', async () => {
    const { core, storage } = await newCore();
    await core.open(V2);
    const a1 = item('a', 'r1', 0);
    const a2 = item('a', 'r2', 10);
    await seed(core, V1, [a1]);
    const handedOut = await core.pendingItems(V2, 10);
    expect(handedOut).toEqual([a1]);
    await seed(core, V1, [a2]); // replaced while v2 was embedding r1
    expect(await core.fill(V2, [fillOf(a1, 'v2')])).toEqual({ size: 0, pending: 1 });
    expect(await core.pendingItems(V2, 10)).toEqual([a2]);
    expect(storage.keysWith('vec:v2:')).toEqual([]);

    expect(await core.fill(V2, [fillOf(a2, 'v2')])).toEqual({ size: 1, pending: 0 });
    expect(storage.data.get('vec:v2:a')).toMatchObject({ revision: 'r2' });
  });

  it('ignores a vector for an item removed meanwhile', async () => {
    const { core, storage } = await newCore();
    await core.open(V2);
    const a = item('a');
    await seed(core, V1, [a]);
    await core.remove('a');
    expect(await core.fill(V2, [fillOf(a, 'v2')])).toEqual({ size: 0, pending: 0 });
    expect(storage.keysWith('vec:')).toEqual([]);
  });

  it('a null vector (undecodable image) marks the revision done with no index entry', async () => {
    const { core, storage } = await newCore();
    await core.open(V2);
    const a = item('a');
    const b = item('b');
    await seed(core, V1, [a, b]);
    expect(await core.fill(V2, [{ id: 'a', revision: 'r1', vector: null }, fillOf(b, 'v2')])).toEqual({ size: 1, pending: 0 });
    expect(await core.get(V2, 'a')).toEqual({ ok: null });
    expect(await core.has(V2, 'a')).toBe(false);
    const answer = await core.query(V2, q, 10, undefined, 32);
    expect('ok' in answer && answer.ok.map((h) => h.id)).toEqual(['b']);
    expect(storage.data.get('vec:v2:a')).toEqual({ revision: 'r1', vector: null });
  });

  it('a null vector for a new revision drops the entry the old revision had', async () => {
    const { core } = await newCore();
    await core.open(V2);
    const a1 = item('a', 'r1', 0);
    await seed(core, V1, [a1]);
    await core.fill(V2, [fillOf(a1, 'v2')]);
    const a2 = item('a', 'r2', 10);
    await seed(core, V1, [a2]);
    expect(await core.fill(V2, [{ id: 'a', revision: 'r2', vector: null }])).toEqual({ size: 0, pending: 0 });
    expect(await core.ids(V2)).toEqual([]);
  });
});

describe('upsert and remove', () => {
  it('ignores an older write of the same id and replaces for a newer one', async () => {
    const { core, storage } = await newCore();
    const mid = item('a', 'r5', 10, { label: 'mid' });
    await core.upsert(V1, mid, vec('a', 'r5'));

    // Older by createdAt: ignored, in memory and in storage.
    expect(await core.upsert(V1, item('a', 'r9', 5, { label: 'old' }), vec('a', 'r9'))).toEqual({ size: 1, pending: 0 });
    // Same createdAt, smaller revision: ignored.
    await core.upsert(V1, item('a', 'r1', 10, { label: 'older-rev' }), vec('a', 'r1'));
    let got = await core.get(V1, 'a');
    expect('ok' in got && got.ok?.label).toBe('mid');
    expectVectorClose(('ok' in got && got.ok?.vector) || undefined, vec('a', 'r5'));
    expect(storage.data.get('item:a')).toEqual(mid);
    expect(storage.data.get('vec:v1:a')).toMatchObject({ revision: 'r5' });

    // Same createdAt, larger revision: replaces.
    const sameTimeNewer = item('a', 'r7', 10, { label: 'r7' });
    await core.upsert(V1, sameTimeNewer, vec('a', 'r7'));
    got = await core.get(V1, 'a');
    expect('ok' in got && got.ok?.label).toBe('r7');
    expect(storage.data.get('item:a')).toEqual(sameTimeNewer);

    // Later createdAt: replaces, even with a smaller revision string.
    const later = item('a', 'r0', 20, { label: 'later' });
    expect(await core.upsert(V1, later, vec('a', 'r0'))).toEqual({ size: 1, pending: 0 });
    got = await core.get(V1, 'a');
    expect('ok' in got && got.ok?.label).toBe('later');
    expectVectorClose(('ok' in got && got.ok?.vector) || undefined, vec('a', 'r0'));
    expect(storage.data.get('item:a')).toEqual(later);
    expect(storage.data.get('vec:v1:a')).toMatchObject({ revision: 'r0' });
  });

  it('a replacement is pending (with its new revision) in the other open versions; a re-upsert of the same revision is not', async () => {
    const { core } = await newCore();
    await core.open(V2);
    const a1 = item('a', 'r1', 0);
    await seed(core, V1, [a1]);
    await core.fill(V2, [fillOf(a1, 'v2')]);

    await seed(core, V1, [a1]); // the same write again
    expect(await core.summary(V2)).toEqual({ size: 1, pending: 0 });

    const a2 = item('a', 'r2', 10);
    await seed(core, V1, [a2]);
    expect((await core.summary(V2)).pending).toBe(1);
    expect(await core.get(V2, 'a')).toEqual({ pending: [a2] });
    expect(await core.summary(V1)).toEqual({ size: 1, pending: 0 });
  });

  it('remove drops an id from every version and from storage', async () => {
    const { core, storage } = await newCore();
    await core.open(V2);
    await core.open(V3);
    const a = item('a');
    const b = item('b');
    await seed(core, V1, [a, b]);
    await core.fill(V2, [fillOf(a, 'v2'), fillOf(b, 'v2')]); // v3 leaves a pending

    expect(await core.remove('a')).toBe(true);
    for (const r of [V1, V2, V3]) {
      expect(await core.ids(r)).not.toContain('a');
      expect(ids(await core.pendingItems(r, 10))).not.toContain('a');
      expect(await core.get(r, 'a')).toEqual({ ok: null });
    }
    expect(await core.summary(V3)).toEqual({ size: 0, pending: 1 });
    expect([...storage.data.keys()].filter((k) => k === 'item:a' || k.endsWith(':a'))).toEqual([]);
    const answer = await core.query(V2, q, 10, undefined, 32);
    expect('ok' in answer && answer.ok.map((h) => h.id)).toEqual(['b']);
    expect(await core.remove('a')).toBe(false);
  });
});

describe('persistence', () => {
  async function populated() {
    const storage = new MemoryStorage();
    const { core } = await newCore(storage);
    await core.open(V1);
    await core.open(V2);
    const items = [
      item('a', 'r1', 0, { label: 'cat', metadata: { k: 1 } }),
      item('b', 'r1', 1, { label: 'dog' }),
      item('c', 'r1', 2),
      item('d', 'r1', 3, { metadata: { deep: { x: [1, 2] } } }),
      item('e', 'r1', 4),
    ];
    await seed(core, V1, items);
    await core.fill(V2, [fillOf(items[0]!, 'v2'), fillOf(items[1]!, 'v2'), { id: 'c', revision: 'r1', vector: null }]);
    // d and e pending in v2; then b is replaced through v1: pending again in v2.
    await seed(core, V1, [item('b', 'r2', 10, { label: 'wolf' })]);
    return { storage, core };
  }

  it('a second core over the same storage reproduces items, versions and vectors', async () => {
    const { storage, core } = await populated();
    const { core: again } = await newCore(storage);
    for (const r of [V1, V2]) {
      expect((await again.open(r)).pending).toBe((await core.summary(r)).pending);
      // The same set (the order pending items are handed out in is not kept across a reload).
      const byId = (xs: ItemMeta[]) => [...xs].sort((x, y) => x.id.localeCompare(y.id));
      expect(byId(await again.pendingItems(r, 100))).toEqual(byId(await core.pendingItems(r, 100)));
    }
    // v2 answers only once caught up: fill both the same way, then compare answers.
    for (const c of [core, again]) await c.fill(V2, (await c.pendingItems(V2, 100)).map((it) => fillOf(it, 'v2')));
    for (const r of [V1, V2]) {
      expect(await again.summary(r)).toEqual(await core.summary(r));
      expect((await again.ids(r)).sort()).toEqual((await core.ids(r)).sort());
      for (const query of [q, vec('a', 'r1', r.version), vec('b', 'r2', r.version)]) {
        const mine = await core.query(r, query, 10, undefined, 32);
        expect('ok' in mine).toBe(true);
        expect(await again.query(r, query, 10, undefined, 32)).toEqual(mine);
      }
      for (const id of ['a', 'b', 'c', 'd', 'e']) expect(await again.get(r, id)).toEqual(await core.get(r, id));
    }
  });

  // An item replaced through another version keeps its old vector here until it is re-embedded, whether
  // or not the Durable Object restarted in between.
  it('before catch-up, a reloaded core reports the same size, ids and has() as the live one', async () => {
    const { storage, core } = await populated();
    const { core: again } = await newCore(storage);
    expect(await again.open(V2)).toEqual(await core.summary(V2));
    expect((await again.ids(V2)).sort()).toEqual((await core.ids(V2)).sort());
    expect(await again.has(V2, 'b')).toBe(await core.has(V2, 'b'));
  });

  it('pending sets are recomputed from the stored revisions', async () => {
    const { storage } = await populated();
    const { core } = await newCore(storage);
    expect(await core.open(V1)).toEqual({ size: 5, pending: 0 });
    // a done; b replaced after its v2 vector (r1) was stored; c undecodable (done, not indexed); d, e never filled.
    expect((await core.open(V2)).pending).toBe(3);
    expect(await core.has(V2, 'a')).toBe(true);
    expect(await core.pendingItems(V2, 10)).toEqual([item('b', 'r2', 10, { label: 'wolf' }), item('d', 'r1', 3, { metadata: { deep: { x: [1, 2] } } }), item('e', 'r1', 4)]);
    expect(await core.get(V2, 'c')).toEqual({ ok: null });
    // A version never opened before is registered on first use, with everything pending.
    expect(await core.open(V3)).toEqual({ size: 0, pending: 5 });
    expect(storage.data.get('version:v3')).toBe(DIM);
  });
});

describe('sync with a gallery listing', () => {
  const GRACE = 60_000;

  it('takes in new and newer items as pending, and removes items deleted elsewhere after the grace period', async () => {
    const { core, storage } = await newCore(new MemoryStorage(), { listingGraceMs: GRACE });
    await core.open(V2);
    const keep = item('keep', 'r1', 0);
    const stale = item('stale', 'r1', 0);
    const gone = item('gone', 'r1', 0);
    const recent = item('recent', 'r1', 100_000);
    const ahead = item('ahead', 'r2', 50); // written through the index, newer than the listing's copy
    await seed(core, V1, [keep, stale, gone, recent, ahead]);
    await core.fill(V2, [keep, stale, gone, recent, ahead].map((it) => fillOf(it, 'v2')));

    const listedAt = T0 + 120_000; // `recent` was created 20 s before the listing: within grace
    const fresh = item('fresh', 'r1', 110_000);
    const staleNow = item('stale', 'r2', 30);
    await core.sync([keep, staleNow, fresh, item('ahead', 'r1', 0)], listedAt);

    expect(ids(await core.pendingItems(V2, 10)).sort()).toEqual(['fresh', 'stale']);
    expect(ids(await core.pendingItems(V1, 10)).sort()).toEqual(['fresh', 'stale']);
    expect(await core.get(V2, 'stale')).toEqual({ pending: [staleNow] });
    expect(storage.data.get('item:fresh')).toEqual(fresh);
    expect(storage.data.get('item:stale')).toEqual(staleNow);
    expect(storage.data.get('item:ahead')).toEqual(ahead);

    expect(await core.get(V1, 'gone')).toEqual({ ok: null });
    expect(storage.keysWith('item:gone')).toEqual([]);
    expect(storage.keysWith('vec:v1:gone')).toEqual([]);
    expect(storage.keysWith('vec:v2:gone')).toEqual([]);
    expect(await core.has(V1, 'recent')).toBe(true);
    expect(await core.has(V2, 'keep')).toBe(true);
    expect(await core.has(V1, 'ahead')).toBe(true);
  });

  it('open() syncs through readGallery once per instance, at `now`, and retries after a failed listing', async () => {
    let listings = 0;
    let fail = true;
    const listing = [item('x', 'r1', 0), item('y', 'r1', 0)];
    const storage = new MemoryStorage();
    const { core } = await newCore(storage, {
      listingGraceMs: GRACE,
      now: () => T0 + 10 * GRACE,
      readGallery: async () => {
        listings++;
        if (fail) throw new Error('R2 is down');
        return listing;
      },
    });
    await expect(core.open(V1)).rejects.toThrow('R2 is down');
    fail = false;
    expect(await core.open(V1)).toEqual({ size: 0, pending: 2 });
    expect(await core.open(V2)).toEqual({ size: 0, pending: 2 });
    expect(listings).toBe(2);

    // An item upserted long "before" the listing and absent from it goes on the next instance's first open.
    await core.upsert(V1, item('old', 'r1', 0), vec('old'));
    const { core: next } = await newCore(storage, { listingGraceMs: GRACE, now: () => T0 + 10 * GRACE, readGallery: async () => listing });
    await next.open(V1);
    expect(storage.keysWith('item:')).toEqual(['item:x', 'item:y']);
  });
});

describe('eviction of model versions', () => {
  it('opening more versions than keepVersions drops the least recently used one, in memory and storage', async () => {
    const { core, storage } = await newCore(new MemoryStorage(), { keepVersions: 2 });
    const items = [item('a'), item('b')];
    await core.open(V1);
    await core.open(V2);
    await seed(core, V1, items);
    await core.fill(V2, items.map((it) => fillOf(it, 'v2')));
    await core.query(V1, q, 1, undefined, 32); // v1 is now more recently used than v2

    expect(await core.open(V3)).toEqual({ size: 0, pending: 2 });
    expect(storage.keysWith('vec:v2:')).toEqual([]);
    expect(storage.keysWith('version:v2')).toEqual([]);
    expect(storage.keysWith('version:')).toEqual(['version:v1', 'version:v3']);
    expect(storage.keysWith('vec:v1:')).toEqual(['vec:v1:a', 'vec:v1:b']);

    // Reopening v2 rebuilds it from nothing, and drops v1 (now the least recently used).
    expect(await core.open(V2)).toEqual({ size: 0, pending: 2 });
    expect(storage.keysWith('vec:v1:')).toEqual([]);
    expect(storage.keysWith('version:')).toEqual(['version:v2', 'version:v3']);
    expect(await core.query(V2, q, 5, undefined, 32)).toEqual({ pending: items });

    // And a fresh instance sees only the kept versions.
    const { core: again } = await newCore(storage, { keepVersions: 2 });
    expect(await again.open(V3)).toEqual({ size: 0, pending: 2 });
    expect(storage.keysWith('version:')).toEqual(['version:v2', 'version:v3']);
  });

  it('a fresh instance drops versions registered in storage but not opened before the ones it uses', async () => {
    const storage = new MemoryStorage();
    const { core } = await newCore(storage, { keepVersions: 2 });
    await seed(core, V1, [item('a')]);
    await seed(core, V2, [item('a')]);
    const { core: again } = await newCore(storage, { keepVersions: 2 });
    expect(await again.open(V2)).toEqual({ size: 1, pending: 0 });
    await again.open(V3);
    expect(storage.keysWith('version:')).toEqual(['version:v2', 'version:v3']);
    expect(storage.keysWith('vec:v1:')).toEqual([]);
    expect(await again.summary(V2)).toEqual({ size: 1, pending: 0 });
  });
});

describe('version state', () => {
  it('a dimension mismatch for a known version throws a clear error and leaves the version usable', async () => {
    const storage = new MemoryStorage();
    const { core } = await newCore(storage);
    await seed(core, V1, [item('a')]);
    const wrong = ref('v1', 8);
    const message = /model version v1 has dimension 4 in the gallery index, not 8/;
    await expect(core.open(wrong)).rejects.toThrow(message);
    await expect(core.query(wrong, new Float32Array(8), 1, undefined, 32)).rejects.toThrow(message);
    await expect(core.upsert(wrong, item('b'), new Float32Array(8))).rejects.toThrow(message);
    expect(await core.summary(V1)).toEqual({ size: 1, pending: 0 });

    // Registered in storage but not loaded yet (a fresh instance).
    const { core: again } = await newCore(storage);
    await expect(again.open(wrong)).rejects.toThrow(message);
    expect(await again.open(V1)).toEqual({ size: 1, pending: 0 });
  });

  it('concurrent first uses of a stored version share one load', async () => {
    const storage = new MemoryStorage();
    const { core } = await newCore(storage);
    await seed(core, V1, [item('a'), item('b')]);
    const { core: again } = await newCore(storage);
    storage.log.length = 0;
    const [s1, s2, s3] = await Promise.all([again.open(V1), again.open(V1), again.query(V1, q, 5, undefined, 32)]);
    expect(s1).toEqual({ size: 2, pending: 0 });
    expect(s2).toEqual(s1);
    expect('ok' in s3 && s3.ok).toHaveLength(2);
    expect(storage.ops('list').filter((o) => o.prefix === 'vec:v1:')).toHaveLength(1);
  });

  it('concurrent first uses of a new version register it once', async () => {
    const { core, storage } = await newCore();
    storage.log.length = 0;
    const [s1, s2] = await Promise.all([core.open(V1), core.open(V1)]);
    expect(s1).toEqual({ size: 0, pending: 0 });
    expect(s2).toEqual(s1);
    expect(storage.ops('put').filter((o) => o.keys.includes('version:v1'))).toHaveLength(1);
  });

  it('concurrent first opens wait for one gallery listing', async () => {
    let listings = 0;
    const { core, storage } = await newCore(new MemoryStorage(), {
      now: () => T0,
      readGallery: async () => {
        listings++;
        return [item('a')];
      },
    });
    const [s1, s2] = await Promise.all([core.open(V1), core.open(V1)]);
    expect(s1).toEqual({ size: 0, pending: 1 });
    expect(s2).toEqual(s1);
    expect(listings).toBe(1);
    expect(storage.ops('put').filter((o) => o.keys.includes('version:v1'))).toHaveLength(1);
  });

  it('concurrent first opens of one version with different dimensions reject the mismatched one', async () => {
    const { core } = await newCore();
    const [ok, wrong] = await Promise.allSettled([core.open(V1), core.open(ref('v1', 8))]);
    expect(ok.status).toBe('fulfilled');
    expect(wrong.status).toBe('rejected');
  });
});

describe('storage batching (at most 128 keys per put/delete)', () => {
  const many = (n: number, createdMs = 0) => Array.from({ length: n }, (_, i) => item(`m${String(i).padStart(3, '0')}`, 'r1', createdMs));

  it('fills 300 items in one call', async () => {
    const { core, storage } = await newCore();
    const items = many(300);
    await core.sync(items, T0);
    expect(storage.keysWith('item:')).toHaveLength(300);
    expect(await core.open(V1)).toEqual({ size: 0, pending: 300 });
    expect(await core.fill(V1, items.map((it) => fillOf(it, 'v1')))).toEqual({ size: 300, pending: 0 });
    expect(storage.keysWith('vec:v1:')).toHaveLength(300);
    expect(Math.max(...storage.ops('put').map((o) => o.keys.length))).toBeLessThanOrEqual(LIMIT);

    const { core: again } = await newCore(storage);
    expect(await again.open(V1)).toEqual({ size: 300, pending: 0 });
  });

  it('removes 300 items deleted elsewhere in one sync, and evicts a version holding 300 vectors', async () => {
    const { core, storage } = await newCore(new MemoryStorage(), { keepVersions: 1, listingGraceMs: 0 });
    const items = many(300);
    await core.sync(items, T0);
    await core.open(V1);
    await core.fill(V1, items.map((it) => fillOf(it, 'v1')));

    expect(await core.open(V2)).toEqual({ size: 0, pending: 300 }); // evicts v1 and its 300 vectors
    expect(storage.keysWith('vec:v1:')).toEqual([]);
    expect(storage.keysWith('version:')).toEqual(['version:v2']);
    await core.fill(V2, items.map((it) => fillOf(it, 'v2')));

    await core.sync([], T0 + 1);
    expect(storage.keysWith('item:')).toEqual([]);
    expect(storage.keysWith('vec:')).toEqual([]);
    expect(await core.summary(V2)).toEqual({ size: 0, pending: 0 });
    expect(Math.max(...storage.ops('delete').map((o) => o.keys.length))).toBeLessThanOrEqual(LIMIT);
  });
});
