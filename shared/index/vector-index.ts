/**
 * The vector index port. The in-process exact cosine index is the first implementation; the methods are
 * async so remote indexes (Cloudflare Vectorize, pgvector) can implement the same interface later.
 */
export interface IndexPayload {
  label?: string;
  metadata?: Record<string, unknown>;
}

export interface IndexEntry extends IndexPayload {
  id: string;
  vector: Float32Array;
}

export interface IndexHit extends IndexPayload {
  id: string;
  /** Cosine similarity in [-1, 1]; higher is closer. */
  score: number;
}

export interface IndexFilter {
  /** Only entries with exactly this label. */
  label?: string;
  /** Only entries that have a label (kNN classification). */
  labelled?: boolean;
  /** Entries to leave out (e.g. the query's own id). */
  excludeIds?: string[];
}

/** An entry as listed for a whole-index view (the gallery map): its unit vector and label, no metadata. */
export interface ListedEntry {
  id: string;
  /** L2-normalised, as the index compares vectors (a zero vector stays zero). */
  vector: Float32Array;
  label?: string;
}

export interface ListOptions {
  /** Only entries with exactly this label. */
  label?: string;
  /** At most this many: past it, an evenly spaced sample of the matching entries in id order. */
  limit?: number;
}

export interface EntryListing {
  /** In id order. */
  entries: ListedEntry[];
  /** How many entries matched (more than entries.length when sampled). */
  total: number;
}

export interface VectorIndex {
  readonly dimension: number;
  size(): Promise<number>;
  /** Insert or replace by id. Throws IndexDimensionError when the vector has the wrong length. */
  upsert(entry: IndexEntry): Promise<void>;
  /** Returns false when the id was not there. */
  delete(id: string): Promise<boolean>;
  get(id: string): Promise<IndexEntry | undefined>;
  has(id: string): Promise<boolean>;
  ids(): Promise<string[]>;
  /** The entries (matching options.label), in id order; past options.limit an evenly spaced sample. */
  entries(options?: ListOptions): Promise<EntryListing>;
  /** The k best by cosine similarity, best first; ties broken by id for determinism. */
  query(vector: Float32Array, k: number, filter?: IndexFilter): Promise<IndexHit[]>;
  /** A self-contained binary snapshot that deserialize() turns back into an equal index. */
  serialize(): Promise<Uint8Array>;
}

export class IndexDimensionError extends Error {
  constructor(readonly expected: number, readonly actual: number) {
    super(`vector has ${actual} dimensions; the index holds ${expected}-dimensional vectors`);
    this.name = 'IndexDimensionError';
  }
}

export class IndexFormatError extends Error {
  constructor(message: string) {
    super(`index snapshot is not readable: ${message}`);
    this.name = 'IndexFormatError';
  }
}
