import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { sha256Hex } from '../shared/checkpoint/sha256.js';
import {
  PreconditionFailedError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StoredObject,
} from '../shared/store/object-store.js';

/**
 * An ObjectStore on a local folder, for `npm run train`'s resumable snapshots (<out>/state/). One
 * process at a time: conditional writes are checked but not atomic across processes. Writes go to a
 * temp file and are renamed, so a crash never leaves a half-written object.
 */
export class DirStore implements ObjectStore {
  readonly supportsConditionalWrites = false;
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `folder ${root}`;
  }

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '')) throw new Error(`invalid object key ${key}`);
    return join(this.root, ...key.split('/'));
  }

  async get(key: string, opts: GetOptions = {}): Promise<StoredObject | { notModified: true } | null> {
    let body: Uint8Array;
    try {
      body = new Uint8Array(await readFile(this.path(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    const etag = `"${await sha256Hex(body)}"`;
    if (opts.ifNoneMatch === etag) return { notModified: true };
    return { body, etag };
  }

  async put(key: string, body: Uint8Array | string, opts: PutOptions = {}): Promise<{ etag: string }> {
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    if (opts.ifNoneMatch === '*' || opts.ifMatch !== undefined) {
      const cur = await this.get(key);
      const etag = cur && 'etag' in cur ? cur.etag : null;
      if (opts.ifNoneMatch === '*' && etag) throw new PreconditionFailedError(key, `${key} already exists`);
      if (opts.ifMatch !== undefined && etag !== opts.ifMatch) throw new PreconditionFailedError(key);
    }
    const p = this.path(key);
    await mkdir(dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, p);
    return { etag: `"${await sha256Hex(bytes)}"` };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const got = await this.get(key);
    if (!got || !('body' in got)) return null;
    const s = await stat(this.path(key));
    return { key, size: got.body.byteLength, etag: got.etag, lastModified: s.mtime };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    let files: string[];
    try {
      files = (await readdir(this.root, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile() && !e.name.includes('.tmp-'))
        .map((e) => relative(this.root, join(e.parentPath, e.name)).split(sep).join('/'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: ObjectInfo[] = [];
    for (const key of files.filter((k) => k.startsWith(prefix)).sort()) {
      const info = await this.head(key);
      if (info) out.push(info);
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
