import { describe, expect, it } from 'vitest';
import { ExactIndex, deserializeExactIndex } from '../shared/index/exact-index.js';
import { IndexDimensionError, IndexFormatError } from '../shared/index/vector-index.js';
import { Rng } from '../shared/util/rng.js';

function randomVector(rng: Rng, d: number): Float32Array {
  const v = new Float32Array(d);
  for (let i = 0; i < d; i++) v[i] = rng.normal();
  return v;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

describe('ExactIndex', () => {
  it('returns the same top-k as a brute-force cosine sort, with labels and filters', async () => {
    const rng = new Rng(7);
    const d = 32;
    const index = new ExactIndex(d, 4);
    const all: { id: string; v: Float32Array; label: string }[] = [];
    for (let i = 0; i < 300; i++) {
      const v = randomVector(rng, d);
      const label = `c${i % 3}`;
      all.push({ id: `img-${i}`, v, label });
      await index.upsert({ id: `img-${i}`, vector: v, label, metadata: { i } });
    }
    expect(await index.size()).toBe(300);
    const q = randomVector(rng, d);
    const expected = all.map((e) => ({ id: e.id, s: cosine(q, e.v) })).sort((a, b) => b.s - a.s).slice(0, 10);
    const hits = await index.query(q, 10);
    expect(hits.map((h) => h.id)).toEqual(expected.map((e) => e.id));
    hits.forEach((h, j) => expect(h.score).toBeCloseTo(expected[j]!.s, 5));
    expect(hits[0]!.metadata).toEqual({ i: Number(hits[0]!.id.slice(4)) });

    const filtered = await index.query(q, 5, { label: 'c1', excludeIds: [expected.find((e) => all[Number(e.id.slice(4))]!.label === 'c1')!.id] });
    expect(filtered).toHaveLength(5);
    expect(filtered.every((h) => h.label === 'c1')).toBe(true);
    const c1Expected = all.filter((e) => e.label === 'c1').map((e) => ({ id: e.id, s: cosine(q, e.v) })).sort((a, b) => b.s - a.s);
    expect(filtered.map((h) => h.id)).toEqual(c1Expected.slice(1, 6).map((e) => e.id));

    await index.upsert({ id: 'unlabelled', vector: q });
    expect((await index.query(q, 1))[0]!.id).toBe('unlabelled');
    expect((await index.query(q, 1, { labelled: true }))[0]!.id).toBe(expected[0]!.id);
  });

  it('upsert replaces, delete keeps the remaining rows correct, and get returns the stored vector', async () => {
    const rng = new Rng(1);
    const index = new ExactIndex(8);
    const vs = Array.from({ length: 5 }, () => randomVector(rng, 8));
    for (let i = 0; i < 5; i++) await index.upsert({ id: `a${i}`, vector: vs[i]!, label: 'x' });
    const replacement = randomVector(rng, 8);
    await index.upsert({ id: 'a2', vector: replacement });
    expect(await index.size()).toBe(5);
    expect((await index.get('a2'))!.label).toBeUndefined();
    expect(Array.from((await index.get('a2'))!.vector)).toEqual(Array.from(replacement).map((x) => expect.closeTo(x, 5)));
    expect(await index.delete('a0')).toBe(true);
    expect(await index.delete('a0')).toBe(false);
    expect(await index.size()).toBe(4);
    // The row moved into a0's slot (a4) must still be found by its own vector with score 1.
    const top = await index.query(vs[4]!, 1);
    expect(top[0]!.id).toBe('a4');
    expect(top[0]!.score).toBeCloseTo(1, 5);
    expect((await index.ids()).sort()).toEqual(['a1', 'a2', 'a3', 'a4']);
  });

  it('scores every stored vector against itself as exactly 1 at most (cosine never leaves [-1, 1])', async () => {
    const rng = new Rng(11);
    const d = 128;
    const index = new ExactIndex(d, 8);
    const vs = Array.from({ length: 200 }, () => randomVector(rng, d).map((x) => Math.abs(x) * 0.37));
    for (const [i, v] of vs.entries()) await index.upsert({ id: `v${i}`, vector: v });
    for (const v of vs) {
      const [top] = await index.query(v, 1);
      expect(top!.score).toBeLessThanOrEqual(1);
      expect(top!.score).toBeCloseTo(1, 5);
      const [worst] = await index.query(v.map((x) => -x), 1);
      expect(worst!.score).toBeGreaterThanOrEqual(-1);
    }
  });

  it('rejects vectors of the wrong dimension', async () => {
    const index = new ExactIndex(4);
    await expect(index.upsert({ id: 'x', vector: new Float32Array(3) })).rejects.toBeInstanceOf(IndexDimensionError);
    await expect(index.query(new Float32Array(5), 3)).rejects.toThrow(/5 dimensions; the index holds 4/);
  });

  it('serialises to bytes and back to an index that answers identically', async () => {
    const rng = new Rng(3);
    const index = new ExactIndex(16);
    for (let i = 0; i < 50; i++) await index.upsert({ id: `é-${i}`, vector: randomVector(rng, 16), label: i % 2 ? 'odd' : undefined, metadata: i % 5 ? undefined : { note: 'ünïcode', i } });
    await index.delete('é-10');
    const bytes = await index.serialize();
    const copy = deserializeExactIndex(bytes);
    expect(await copy.size()).toBe(49);
    const q = randomVector(rng, 16);
    expect(await copy.query(q, 7, { label: 'odd' })).toEqual(await index.query(q, 7, { label: 'odd' }));
    expect(await copy.get('é-15')).toEqual(await index.get('é-15'));
    // Still a live index: writes work after loading.
    await copy.upsert({ id: 'new', vector: q });
    expect((await copy.query(q, 1))[0]!.id).toBe('new');

    const corrupt = bytes.slice(0, bytes.length - 3);
    expect(() => deserializeExactIndex(corrupt)).toThrow(IndexFormatError);
    expect(() => deserializeExactIndex(new TextEncoder().encode('not an index at all'))).toThrow(/magic/);
  });
});
