import { expect, describe, it } from 'vitest';
import { PreconditionFailedError, type ObjectStore } from '../../shared/store/object-store.js';

export const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** Behaviour every ObjectStore must have, run against the real s3rver and the memory store. */
export function contract(name: string, getStore: () => ObjectStore) {
  describe(`${name}: ObjectStore contract`, () => {
    it('round-trips bytes exactly, including every byte value and CRLF framing look-alikes', async () => {
      const store = getStore();
      const bytes = new Uint8Array(70_000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 8)) & 0xff;
      bytes.set(new TextEncoder().encode('c\r\nhello\r\n0\r\n'), 100);
      const { etag } = await store.put('rt/bin', bytes, { contentType: 'application/octet-stream' });
      const got = await store.get('rt/bin');
      expect(got && 'body' in got).toBe(true);
      if (!got || !('body' in got)) return;
      expect(got.body.byteLength).toBe(bytes.byteLength);
      expect(Buffer.from(got.body).equals(Buffer.from(bytes))).toBe(true);
      expect(got.etag).toBe(etag);
      const h = await store.head('rt/bin');
      expect(h).toMatchObject({ key: 'rt/bin', size: bytes.byteLength, etag });
    });

    it('returns null for missing keys (get, head) and deletes idempotently', async () => {
      const store = getStore();
      expect(await store.get('nope/missing')).toBeNull();
      expect(await store.head('nope/missing')).toBeNull();
      await store.put('del/x', 'x');
      await store.delete('del/x');
      await store.delete('del/x');
      expect(await store.get('del/x')).toBeNull();
    });

    it('answers a conditional GET with notModified while the ETag holds, and the body after a change', async () => {
      const store = getStore();
      const a = await store.put('cond/p.json', '{"v":1}');
      expect(await store.get('cond/p.json', { ifNoneMatch: a.etag })).toEqual({ notModified: true });
      await store.put('cond/p.json', '{"v":2}');
      const got = await store.get('cond/p.json', { ifNoneMatch: a.etag });
      expect(got && 'body' in got && text(got.body)).toBe('{"v":2}');
    });

    it('refuses create-only over an existing key and ifMatch with a stale ETag', async () => {
      const store = getStore();
      const first = await store.put('cas/k', 'one', { ifNoneMatch: '*' });
      await expect(store.put('cas/k', 'two', { ifNoneMatch: '*' })).rejects.toBeInstanceOf(PreconditionFailedError);
      const second = await store.put('cas/k', 'two', { ifMatch: first.etag });
      await expect(store.put('cas/k', 'three', { ifMatch: first.etag })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      await expect(store.put('cas/absent', 'x', { ifMatch: second.etag })).rejects.toBeInstanceOf(
        PreconditionFailedError,
      );
      const got = await store.get('cas/k');
      expect(got && 'body' in got && text(got.body)).toBe('two');
    });

    it('lists every key under a prefix, sorted, across pages', async () => {
      const store = getStore();
      const keys = Array.from({ length: 11 }, (_, i) => `list/item-${String(10 - i).padStart(2, '0')}`);
      for (const k of keys) await store.put(k, k);
      await store.put('listx/other', 'not under list/');
      const listed = await store.list('list/');
      expect(listed.map((o) => o.key)).toEqual([...keys].sort());
      expect(listed.every((o) => o.size === 'list/item-00'.length && o.etag.length > 0)).toBe(true);
    });
  });
}

