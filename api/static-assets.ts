import type { Context } from 'hono';
import type { App, AppEnv } from './context.js';
import { route } from './route.js';

/** A text asset served from a string constant (the console's and the docs' pages bundle no files). */
export interface StaticAsset {
  body: string;
  type: string;
  /** Content hash: the asset's URL and ETag. */
  hash: string;
}

export function staticAsset(body: string, type: string): StaticAsset {
  return { body, type, hash: fnv1a(body) };
}

const COMMON_HEADERS = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };

/** An HTML page, revalidated by ETag on every load, under a Content-Security-Policy. */
export function servePage(html: string, csp: string): (c: Context<AppEnv>) => Response {
  const etag = `"${fnv1a(html)}"`;
  return (c) => {
    const headers = { ...COMMON_HEADERS, 'Cache-Control': 'no-cache', ETag: etag, 'Content-Security-Policy': csp, 'X-Frame-Options': 'DENY' };
    if (matches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    return c.body(html, 200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' });
  };
}

/** A content-addressed asset (its URL names its hash), cached for ever. */
export function routeAsset(app: App, path: string, asset: StaticAsset): void {
  const etag = `"${asset.hash}"`;
  route(app, { method: 'get', path, hide: true, responses: { 200: { description: 'Static asset' } } }, (c) => {
    const headers = { ...COMMON_HEADERS, 'Cache-Control': 'public, max-age=31536000, immutable', ETag: etag };
    if (matches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
    return c.body(asset.body, 200, { ...headers, 'Content-Type': asset.type });
  });
}

/** A non-addressed asset (e.g. /favicon.ico), cached for a day. */
export function routeFixedAsset(app: App, path: string, asset: StaticAsset): void {
  route(app, { method: 'get', path, hide: true, responses: { 200: { description: 'Static asset' } } }, (c) =>
    c.body(asset.body, 200, { ...COMMON_HEADERS, 'Content-Type': asset.type, 'Cache-Control': 'public, max-age=86400' }),
  );
}

function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag || t.trim() === '*');
}

/** 32-bit FNV-1a of the UTF-16 code units, as 8 hex digits: a cache key, not a security property. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
