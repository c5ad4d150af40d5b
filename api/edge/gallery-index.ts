import { ExactIndex } from '../../shared/index/exact-index.js';
import {
  IndexDimensionError,
  type EntryListing,
  type IndexEntry,
  type IndexFilter,
  type IndexHit,
  type ListOptions,
} from '../../shared/index/vector-index.js';
import type { DurableObjectStorage } from './cf-types.js';

/** A gallery item as the index needs it: its revision (which image bytes) and its payload. */
export interface ItemMeta {
  id: string;
  revision: string;
  createdAt: string;
  label?: string;
  metadata?: Record<string, unknown>;
}

/** A vector computed for one item revision under one model version; null = the image would not decode. */
export interface FillEntry {
  id: string;
  revision: string;
  vector: Float32Array | null;
}

/** A model version and the dimension of its vectors. */
export interface VersionRef {
  version: string;
  dimension: number;
}

export interface VersionSummary {
  size: number;
  /** Items whose current revision is not embedded under this version yet. */
  pending: number;
}

/** The query's answer, or the items to embed first so the answer includes every write (read-your-writes). */
export type Answer<T> = { ok: T } | { pending: ItemMeta[] };

interface VersionState {
  index: ExactIndex;
  /** id → the revision embedded (or found undecodable) under this version. */
  revisions: Map<string, string>;
  pending: Set<string>;
}

interface StoredVector {
  revision: string;
  vector: Float32Array | null;
}

const itemKey = (id: string) => `item:${id}`;
const versionKey = (v: string) => `version:${v}`;
const vectorPrefix = (v: string) => `vec:${v}:`;
/** Durable Object storage writes and deletes at most 128 keys per call. */
const STORAGE_BATCH = 128;

const newer = (a: ItemMeta, b: ItemMeta) => a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.revision > b.revision);

/**
 * The gallery index shared by every isolate of a deployment: the logic of the GalleryIndex Durable
 * Object, which is the single writer, so a write made through one isolate is in the next query from any
 * other. It knows every gallery item's current revision and keeps, per model version, an exact cosine
 * index of the revisions embedded under that version. Items written under one version are pending in the
 * others until an isolate serving them embeds them; queries hand pending items back to be embedded first.
 * Written against the storage port so it runs (and is tested) outside workerd too.
 */
export class GalleryIndexCore {
  private items = new Map<string, ItemMeta>();
  /** Versions with vectors in storage. */
  private registered = new Map<string, number>();
  /** Versions loaded in memory, least recently opened first. */
  private loaded = new Map<string, VersionState>();
  private syncing: Promise<void> | null = null;
  private opening = new Map<string, Promise<VersionState>>();

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly opts: {
      /** Versions whose vectors are kept; older ones are dropped and re-embedded if they come back. */
      keepVersions: number;
      /** The gallery as the bucket holds it, to take in writes made elsewhere (the Node API). */
      readGallery?: () => Promise<ItemMeta[]>;
      /** Items created this long before a gallery listing and absent from it were deleted elsewhere. */
      listingGraceMs?: number;
      now?: () => number;
    },
  ) {}

  /** Read the items and registered versions (the Durable Object calls this once, before any request). */
  async load(): Promise<void> {
    for (const [, item] of await this.storage.list<ItemMeta>({ prefix: 'item:' })) this.items.set(item.id, item);
    for (const [key, dim] of await this.storage.list<number>({ prefix: 'version:' })) this.registered.set(key.slice('version:'.length), dim);
  }

  /** Make `version` ready to take vectors and queries; the first open in this instance syncs with the bucket. */
  async open(ref: VersionRef): Promise<VersionSummary> {
    const read = this.opts.readGallery;
    if (read) {
      const now = this.opts.now ?? Date.now;
      this.syncing ??= (async () => this.sync(await read(), now()))().catch((err: unknown) => {
        this.syncing = null; // try again on the next open
        throw err;
      });
      await this.syncing;
    }
    return this.summarise(await this.state(ref));
  }

  async summary(ref: VersionRef): Promise<VersionSummary> {
    return this.summarise(await this.state(ref));
  }

  async pendingItems(ref: VersionRef, limit: number): Promise<ItemMeta[]> {
    return this.pendingOf(await this.state(ref), limit);
  }

  private summarise(st: VersionState): VersionSummary {
    return { size: st.index.sizeSync(), pending: st.pending.size };
  }

  private pendingOf(st: VersionState, limit: number): ItemMeta[] {
    const out: ItemMeta[] = [];
    for (const id of st.pending) {
      if (out.length >= limit) break;
      out.push(this.items.get(id)!);
    }
    return out;
  }

  /** Vectors computed for pending items; one whose item changed or went meanwhile is ignored (still pending). */
  async fill(ref: VersionRef, entries: FillEntry[]): Promise<VersionSummary> {
    const st = await this.state(ref);
    const writes: Record<string, StoredVector> = {};
    const wrong = entries.find((e) => e.vector && e.vector.length !== ref.dimension);
    if (wrong?.vector) throw new IndexDimensionError(ref.dimension, wrong.vector.length);
    for (const e of entries) {
      const item = this.items.get(e.id);
      if (!item || item.revision !== e.revision) continue;
      this.apply(st, item, e.vector);
      writes[vectorPrefix(ref.version) + e.id] = { revision: e.revision, vector: e.vector };
    }
    await this.putAll(writes);
    return this.summarise(st);
  }

  /** A new or replaced item, embedded under `version`: current everywhere, pending in the other versions. */
  async upsert(ref: VersionRef, item: ItemMeta, vector: Float32Array): Promise<VersionSummary> {
    const st = await this.state(ref);
    if (vector.length !== ref.dimension) throw new IndexDimensionError(ref.dimension, vector.length);
    const known = this.items.get(item.id);
    if (known && newer(known, item)) return this.summarise(st); // a later write of this id already won
    this.items.set(item.id, item);
    for (const other of this.loaded.values()) if (other !== st && other.revisions.get(item.id) !== item.revision) other.pending.add(item.id);
    this.apply(st, item, vector);
    await this.putAll({ [itemKey(item.id)]: item, [vectorPrefix(ref.version) + item.id]: { revision: item.revision, vector } });
    return this.summarise(st);
  }

  async remove(id: string): Promise<boolean> {
    const existed = this.items.delete(id);
    for (const st of this.loaded.values()) this.drop(st, id);
    await this.deleteAll([itemKey(id), ...[...this.registered.keys()].map((v) => vectorPrefix(v) + id)]);
    return existed;
  }

  async query(ref: VersionRef, vector: Float32Array, k: number, filter: IndexFilter | undefined, catchUp: number): Promise<Answer<IndexHit[]>> {
    const st = await this.state(ref);
    if (st.pending.size > 0 && catchUp > 0) return { pending: this.pendingOf(st, catchUp) };
    return { ok: st.index.querySync(vector, k, filter) };
  }

  /** The version's entries (id order, sampled past options.limit), once nothing is pending there, as query. */
  async entries(ref: VersionRef, options: ListOptions | undefined, catchUp: number): Promise<Answer<EntryListing>> {
    const st = await this.state(ref);
    if (st.pending.size > 0 && catchUp > 0) return { pending: this.pendingOf(st, catchUp) };
    return { ok: st.index.entriesSync(options) };
  }

  async get(ref: VersionRef, id: string): Promise<Answer<IndexEntry | null>> {
    const st = await this.state(ref);
    if (st.pending.has(id)) return { pending: [this.items.get(id)!] };
    return { ok: (await st.index.get(id)) ?? null };
  }

  async has(ref: VersionRef, id: string): Promise<boolean> {
    return (await this.state(ref)).index.has(id);
  }

  async ids(ref: VersionRef): Promise<string[]> {
    return (await this.state(ref)).index.ids();
  }

  /** Take in the bucket's gallery: new or newer items become pending; items deleted elsewhere go. */
  async sync(gallery: ItemMeta[], listedAt: number): Promise<void> {
    const seen = new Set<string>();
    const writes: Record<string, ItemMeta> = {};
    for (const item of gallery) {
      seen.add(item.id);
      const known = this.items.get(item.id);
      if (known && !newer(item, known)) continue;
      this.items.set(item.id, item);
      writes[itemKey(item.id)] = item;
      for (const st of this.loaded.values()) if (st.revisions.get(item.id) !== item.revision) st.pending.add(item.id);
    }
    await this.putAll(writes);
    // An item written through this index just before the listing may be missing from it: keep recent ones.
    const grace = this.opts.listingGraceMs ?? 60_000;
    for (const item of [...this.items.values()]) {
      if (!seen.has(item.id) && Date.parse(item.createdAt) < listedAt - grace) await this.remove(item.id);
    }
  }

  /** The version's state, loaded from storage (or registered) on first use; concurrent first uses share one load. */
  private async state({ version, dimension }: VersionRef): Promise<VersionState> {
    const have = this.loaded.get(version);
    if (have) {
      if (have.index.dimension !== dimension) throw new Error(`model version ${version} has dimension ${have.index.dimension} in the gallery index, not ${dimension}`);
      this.loaded.delete(version);
      this.loaded.set(version, have); // most recently used last
      return have;
    }
    let opening = this.opening.get(version);
    if (!opening) {
      opening = this.loadVersion(version, dimension).finally(() => this.opening.delete(version));
      this.opening.set(version, opening);
    }
    const st = await opening;
    if (st.index.dimension !== dimension) throw new Error(`model version ${version} has dimension ${st.index.dimension} in the gallery index, not ${dimension}`);
    return st;
  }

  private async loadVersion(version: string, dimension: number): Promise<VersionState> {
    const st: VersionState = { index: new ExactIndex(dimension), revisions: new Map(), pending: new Set() };
    const known = this.registered.get(version);
    if (known !== undefined && known !== dimension) throw new Error(`model version ${version} has dimension ${known} in the gallery index, not ${dimension}`);
    if (known === undefined) {
      this.registered.set(version, dimension);
      await this.storage.put({ [versionKey(version)]: dimension });
    } else {
      const prefix = vectorPrefix(version);
      for (const [key, stored] of await this.storage.list<StoredVector>({ prefix })) {
        // A vector of an older revision still answers until the current one is embedded (as in a live index).
        const item = this.items.get(key.slice(prefix.length));
        if (item) this.apply(st, item, stored.vector, stored.revision);
      }
    }
    for (const [id, item] of this.items) if (st.revisions.get(id) !== item.revision) st.pending.add(id);
    this.loaded.set(version, st);
    await this.evict();
    return st;
  }

  private apply(st: VersionState, item: ItemMeta, vector: Float32Array | null, revision = item.revision): void {
    if (vector) st.index.upsertSync({ id: item.id, vector, label: item.label, metadata: item.metadata });
    else void st.index.delete(item.id);
    st.revisions.set(item.id, revision);
    st.pending.delete(item.id);
  }

  private drop(st: VersionState, id: string): void {
    void st.index.delete(id);
    st.revisions.delete(id);
    st.pending.delete(id);
  }

  /** Forget the versions opened longest ago beyond keepVersions, in memory and in storage. */
  private async evict(): Promise<void> {
    const order = [...this.loaded.keys()];
    const unloadedRegistered = [...this.registered.keys()].filter((v) => !this.loaded.has(v));
    const excess = [...unloadedRegistered, ...order].slice(0, Math.max(0, this.registered.size - this.opts.keepVersions));
    for (const v of excess) {
      this.loaded.delete(v);
      this.registered.delete(v);
      const keys = [...(await this.storage.list({ prefix: vectorPrefix(v) })).keys(), versionKey(v)];
      await this.deleteAll(keys);
    }
  }

  private async putAll(entries: Record<string, unknown>): Promise<void> {
    const all = Object.entries(entries);
    for (let i = 0; i < all.length; i += STORAGE_BATCH) await this.storage.put(Object.fromEntries(all.slice(i, i + STORAGE_BATCH)));
  }

  private async deleteAll(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += STORAGE_BATCH) await this.storage.delete(keys.slice(i, i + STORAGE_BATCH));
  }
}
