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
