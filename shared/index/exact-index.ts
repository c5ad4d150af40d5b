import { z } from 'zod';
import {
  IndexDimensionError,
  IndexFormatError,
  type EntryListing,
  type IndexEntry,
  type IndexFilter,
  type IndexHit,
  type ListOptions,
  type VectorIndex,
} from './vector-index.js';

/**
 * Exact (brute-force) cosine index. Vectors are stored L2-normalised in one contiguous Float32Array, so a
 * query is one pass of dot products; deletes move the last row into the hole to keep rows dense.
 * Fine to ~10^5 × 512 in memory; beyond that use an approximate or remote index behind VectorIndex.
 */
export class ExactIndex implements VectorIndex {
  private rows: Float32Array;
  private count = 0;
  private readonly slotOf = new Map<string, number>();
  private slotIds: string[] = [];
  private payloads: ({ label?: string; metadata?: Record<string, unknown> } | undefined)[] = [];
  /** Original norms so get() returns the vector that was stored, not its unit version. */
  private norms: number[] = [];

  constructor(readonly dimension: number, initialCapacity = 64) {
    if (!Number.isInteger(dimension) || dimension <= 0) throw new RangeError(`dimension must be a positive integer, got ${dimension}`);
    this.rows = new Float32Array(dimension * Math.max(1, initialCapacity));
  }

  async size(): Promise<number> {
    return this.count;
  }

  sizeSync(): number {
    return this.count;
  }

  async upsert(entry: IndexEntry): Promise<void> {
    this.upsertSync(entry);
  }

  upsertSync(entry: IndexEntry): void {
    const d = this.dimension;
    if (entry.vector.length !== d) throw new IndexDimensionError(d, entry.vector.length);
    let norm = 0;
    for (let i = 0; i < d; i++) norm += entry.vector[i]! * entry.vector[i]!;
    norm = Math.sqrt(norm);
    if (!Number.isFinite(norm)) throw new RangeError(`vector for ${entry.id} contains non-finite values`);
    let slot = this.slotOf.get(entry.id);
    if (slot === undefined) {
      slot = this.count++;
      this.ensureCapacity(this.count);
      this.slotOf.set(entry.id, slot);
      this.slotIds[slot] = entry.id;
    }
    // A zero vector has no direction: store zeros, which score 0 against everything.
    const inv = norm > 0 ? 1 / norm : 0;
    const base = slot * d;
    for (let i = 0; i < d; i++) this.rows[base + i] = entry.vector[i]! * inv;
    this.norms[slot] = norm;
    this.payloads[slot] =
      entry.label === undefined && entry.metadata === undefined ? undefined : { label: entry.label, metadata: entry.metadata };
  }

  async delete(id: string): Promise<boolean> {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    const last = this.count - 1;
    if (slot !== last) {
      const d = this.dimension;
      this.rows.copyWithin(slot * d, last * d, last * d + d);
      const movedId = this.slotIds[last]!;
      this.slotIds[slot] = movedId;
      this.payloads[slot] = this.payloads[last];
      this.norms[slot] = this.norms[last]!;
      this.slotOf.set(movedId, slot);
    }
    this.slotIds.length = last;
    this.payloads.length = last;
    this.norms.length = last;
    this.slotOf.delete(id);
    this.count = last;
    return true;
  }

  async get(id: string): Promise<IndexEntry | undefined> {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return undefined;
    const d = this.dimension;
    const vector = this.rows.slice(slot * d, slot * d + d);
    const norm = this.norms[slot]!;
    for (let i = 0; i < d; i++) vector[i]! *= norm;
    return { id, vector, ...this.payloads[slot] };
  }

  async has(id: string): Promise<boolean> {
    return this.slotOf.has(id);
  }

  async ids(): Promise<string[]> {
    return this.slotIds.slice(0, this.count);
  }

  async entries(options?: ListOptions): Promise<EntryListing> {
    return this.entriesSync(options);
  }

  entriesSync(options: ListOptions = {}): EntryListing {
    const d = this.dimension;
    const slots: number[] = [];
    for (let s = 0; s < this.count; s++) if (options.label === undefined || this.payloads[s]?.label === options.label) slots.push(s);
    slots.sort((a, b) => (this.slotIds[a]! < this.slotIds[b]! ? -1 : 1));
    const total = slots.length;
    const limit = options.limit === undefined ? total : Math.max(0, Math.floor(options.limit));
    // Evenly spaced in id order: a sample that spans the whole index and is the same on every call.
    const picked = total <= limit ? slots : Array.from({ length: limit }, (_, i) => slots[Math.floor((i * total) / limit)]!);
    const entries = picked.map((s) => {
      const label = this.payloads[s]?.label;
      return { id: this.slotIds[s]!, vector: this.rows.slice(s * d, s * d + d), ...(label !== undefined ? { label } : {}) };
    });
    return { entries, total };
  }

  async query(vector: Float32Array, k: number, filter?: IndexFilter): Promise<IndexHit[]> {
    return this.querySync(vector, k, filter);
  }

  querySync(vector: Float32Array, k: number, filter?: IndexFilter): IndexHit[] {
    const d = this.dimension;
    if (vector.length !== d) throw new IndexDimensionError(d, vector.length);
    if (!(k > 0) || this.count === 0) return [];
    let norm = 0;
    for (let i = 0; i < d; i++) norm += vector[i]! * vector[i]!;
    norm = Math.sqrt(norm);
    const inv = norm > 0 ? 1 / norm : 0;
    const exclude = filter?.excludeIds?.length ? new Set(filter.excludeIds) : undefined;
    // Keep the best k in a small array sorted worst-first: k is small (≤ a few hundred) in practice.
    const bestSlots: number[] = [];
    const bestScores: number[] = [];
    const rows = this.rows;
    for (let s = 0; s < this.count; s++) {
      if (filter?.label !== undefined && this.payloads[s]?.label !== filter.label) continue;
      if (filter?.labelled && this.payloads[s]?.label === undefined) continue;
      if (exclude?.has(this.slotIds[s]!)) continue;
      let dot = 0;
      const base = s * d;
      for (let i = 0; i < d; i++) dot += rows[base + i]! * vector[i]!;
      // Float32 rows can put a unit-vector dot product a hair outside [-1, 1]; cosine cannot be.
      const score = Math.max(-1, Math.min(1, dot * inv));
      if (bestSlots.length === k && !this.better(score, s, bestScores[0]!, bestSlots[0]!)) continue;
      if (bestSlots.length === k) {
        bestSlots.shift();
        bestScores.shift();
      }
      let pos = 0;
      while (pos < bestSlots.length && this.better(score, s, bestScores[pos]!, bestSlots[pos]!)) pos++;
      bestSlots.splice(pos, 0, s);
      bestScores.splice(pos, 0, score);
    }
    const hits: IndexHit[] = [];
    for (let j = bestSlots.length - 1; j >= 0; j--) {
      const s = bestSlots[j]!;
      hits.push({ id: this.slotIds[s]!, score: bestScores[j]!, ...this.payloads[s] });
    }
    return hits;
  }

  /** Higher score wins; equal scores: the smaller id wins, so results do not depend on insertion order. */
  private better(score: number, slot: number, otherScore: number, otherSlot: number): boolean {
    if (score !== otherScore) return score > otherScore;
    return this.slotIds[slot]! < this.slotIds[otherSlot]!;
  }

  private ensureCapacity(n: number): void {
    if (n * this.dimension <= this.rows.length) return;
    const next = new Float32Array(Math.max(n, (this.rows.length / this.dimension) * 2) * this.dimension);
    next.set(this.rows);
    this.rows = next;
  }

  async serialize(): Promise<Uint8Array> {
    return serializeExact(this);
  }

  /** Internal accessors for the snapshot codec. */
  snapshotParts(): { ids: string[]; payloads: (IndexPayloadJson | null)[]; norms: number[]; rows: Float32Array } {
    return {
      ids: this.slotIds.slice(0, this.count),
      payloads: this.payloads.slice(0, this.count).map((p) => (p ? { label: p.label, metadata: p.metadata } : null)),
      norms: this.norms.slice(0, this.count),
      rows: this.rows.subarray(0, this.count * this.dimension),
    };
  }

  static fromParts(dimension: number, ids: string[], payloads: (IndexPayloadJson | null)[], norms: number[], rows: Float32Array): ExactIndex {
    const index = new ExactIndex(dimension, ids.length);
    index.rows.set(rows);
    index.count = ids.length;
    index.slotIds = ids.slice();
    index.norms = norms.slice();
    index.payloads = payloads.map((p) => (p ? { label: p.label, metadata: p.metadata } : undefined));
    ids.forEach((id, slot) => {
      if (index.slotOf.has(id)) throw new IndexFormatError(`duplicate id ${id}`);
      index.slotOf.set(id, slot);
    });
    return index;
  }
}

type IndexPayloadJson = { label?: string; metadata?: Record<string, unknown> };

const MAGIC = 0x58444956; // "VIDX" little-endian
const FORMAT_VERSION = 1;

const Header = z.object({
  dimension: z.number().int().positive(),
  ids: z.array(z.string()),
  payloads: z.array(z.object({ label: z.string().optional(), metadata: z.record(z.string(), z.unknown()).optional() }).nullable()),
  norms: z.array(z.number()),
});

/**
 * Layout: u32 magic, u32 format version, u32 header byte length, UTF-8 JSON header (ids, payloads, norms),
 * zero padding to a multiple of 4, then count × dimension float32 little-endian unit vectors.
 */
function serializeExact(index: ExactIndex): Uint8Array {
  const parts = index.snapshotParts();
  const header = new TextEncoder().encode(
    JSON.stringify({ dimension: index.dimension, ids: parts.ids, payloads: parts.payloads, norms: parts.norms }),
  );
  const headerEnd = 12 + header.length;
  const vecStart = Math.ceil(headerEnd / 4) * 4;
  const out = new Uint8Array(vecStart + parts.rows.length * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, FORMAT_VERSION, true);
  view.setUint32(8, header.length, true);
  out.set(header, 12);
  for (let i = 0; i < parts.rows.length; i++) view.setFloat32(vecStart + i * 4, parts.rows[i]!, true);
  return out;
}

export function deserializeExactIndex(bytes: Uint8Array): ExactIndex {
  if (bytes.length < 12) throw new IndexFormatError('too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new IndexFormatError('wrong magic number');
  const version = view.getUint32(4, true);
  if (version !== FORMAT_VERSION) throw new IndexFormatError(`format version ${version}, expected ${FORMAT_VERSION}`);
  const headerLen = view.getUint32(8, true);
  if (12 + headerLen > bytes.length) throw new IndexFormatError('header runs past the end');
  let header: z.infer<typeof Header>;
  try {
    header = Header.parse(JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLen))));
  } catch (err) {
    throw new IndexFormatError(`bad header (${(err as Error).message})`);
  }
  const n = header.ids.length;
  if (header.payloads.length !== n || header.norms.length !== n) throw new IndexFormatError('header arrays differ in length');
  const vecStart = Math.ceil((12 + headerLen) / 4) * 4;
  const expected = vecStart + n * header.dimension * 4;
  if (bytes.length !== expected) throw new IndexFormatError(`expected ${expected} bytes, got ${bytes.length}`);
  const rows = new Float32Array(n * header.dimension);
  for (let i = 0; i < rows.length; i++) rows[i] = view.getFloat32(vecStart + i * 4, true);
  return ExactIndex.fromParts(header.dimension, header.ids, header.payloads, header.norms, rows);
}
