import { sha256Hex } from '../checkpoint/sha256.js';
import {
  PreconditionFailedError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StoredObject,
} from './object-store.js';

interface Entry {
  body: Uint8Array;
  etag: string;
  contentType?: string;
  lastModified: Date;
}

const encoder = new TextEncoder();

/**
 * In-process ObjectStore that enforces ifMatch / ifNoneMatch atomically (the check and the write happen
 * in one synchronous section), so claiming and publishing protocols can be tested for races.
 * ETags are the quoted sha256 of the content, like S3's quoted MD5.
 */
export class MemoryStore implements ObjectStore {
  readonly supportsConditionalWrites = true;
  readonly description = 'memory store';
  private readonly objects = new Map<string, Entry>();

  constructor(private readonly clock: () => Date = () => new Date()) {}

  async get(key: string, opts: GetOptions = {}): Promise<StoredObject | { notModified: true } | null> {
    const e = this.objects.get(key);
    if (!e) return null;
    if (opts.ifNoneMatch !== undefined && opts.ifNoneMatch === e.etag) return { notModified: true };
    const obj: StoredObject = { body: e.body.slice(), etag: e.etag };
    if (e.contentType) obj.contentType = e.contentType;
    return obj;
  }

  async put(key: string, body: Uint8Array | string, opts: PutOptions = {}): Promise<{ etag: string }> {
    const bytes = typeof body === 'string' ? encoder.encode(body) : body.slice();
    const etag = `"${await sha256Hex(bytes)}"`;
    // No await between the check and the write: this is the atomic section.
    const cur = this.objects.get(key);
    if (opts.ifNoneMatch === '*' && cur) throw new PreconditionFailedError(key, `${key} already exists`);
    if (opts.ifMatch !== undefined && (!cur || cur.etag !== opts.ifMatch))
      throw new PreconditionFailedError(key, `${key} changed since it was read (ETag mismatch)`);
    const entry: Entry = { body: bytes, etag, lastModified: this.clock() };
    if (opts.contentType) entry.contentType = opts.contentType;
    this.objects.set(key, entry);
    return { etag };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const e = this.objects.get(key);
    return e ? { key, size: e.body.byteLength, etag: e.etag, lastModified: e.lastModified } : null;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    for (const [key, e] of this.objects)
      if (key.startsWith(prefix)) out.push({ key, size: e.body.byteLength, etag: e.etag, lastModified: e.lastModified });
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

export function createMemoryStore(clock?: () => Date): MemoryStore {
  return new MemoryStore(clock);
}
