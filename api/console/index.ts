import type { Context } from 'hono';
import type { App, AppEnv } from '../context.js';
import { route } from '../route.js';
import { CONSOLE_CSS } from './assets/style.js';
import { CONSOLE_ICON } from './assets/icon.js';
import { CONSOLE_JS } from './assets/script.js';
import { consoleHtml } from './assets/page.js';

/**
 * The web console at `/`: one HTML page, one ES module and one stylesheet, held as string constants so
 * the Node server and the Worker bundle serve them with no asset configuration and no build step. The
 * page talks only to the public /v1 and /admin routes of its own origin; its Content-Security-Policy
 * forbids every other origin (no CDN, no fonts, no analytics).
 */
export const CONSOLE_ASSETS = {
  js: { body: CONSOLE_JS, type: 'text/javascript; charset=utf-8', hash: fnv1a(CONSOLE_JS) },
  css: { body: CONSOLE_CSS, type: 'text/css; charset=utf-8', hash: fnv1a(CONSOLE_CSS) },
  icon: { body: CONSOLE_ICON, type: 'image/svg+xml; charset=utf-8', hash: fnv1a(CONSOLE_ICON) },
};

/** Content-addressed URLs: the HTML names them, so they can be cached for ever. */
export const CONSOLE_PATHS = {
  js: `/console/app.${CONSOLE_ASSETS.js.hash}.js`,
  css: `/console/app.${CONSOLE_ASSETS.css.hash}.css`,
  icon: `/console/icon.${CONSOLE_ASSETS.icon.hash}.svg`,
};

const HTML = consoleHtml(CONSOLE_PATHS);
const HTML_ETAG = `"${fnv1a(HTML)}"`;

/** Same-origin only: the page may load and call nothing else (blob: for previews of picked images). */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

export function registerConsole(app: App): void {
  const page = (c: Context<AppEnv>) => {
    const headers = { ...COMMON_HEADERS, 'Cache-Control': 'no-cache', ETag: HTML_ETAG, 'Content-Security-Policy': CONSOLE_CSP, 'X-Frame-Options': 'DENY' };
    if (matches(c.req.header('if-none-match'), HTML_ETAG)) return c.body(null, 304, headers);
    return c.body(HTML, 200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' });
  };
  route(app, { method: 'get', path: '/', hide: true, responses: { 200: { description: 'The web console' } } }, page);
  route(app, { method: 'get', path: '/console', hide: true, responses: { 200: { description: 'The web console' } } }, page);

  for (const key of ['js', 'css', 'icon'] as const) {
    const asset = CONSOLE_ASSETS[key];
    const etag = `"${asset.hash}"`;
    route(app, { method: 'get', path: CONSOLE_PATHS[key], hide: true, responses: { 200: { description: 'Console asset' } } }, (c) => {
      const headers = { ...COMMON_HEADERS, 'Cache-Control': 'public, max-age=31536000, immutable', ETag: etag };
      if (matches(c.req.header('if-none-match'), etag)) return c.body(null, 304, headers);
      return c.body(asset.body, 200, { ...headers, 'Content-Type': asset.type });
    });
  }
  // Browsers ask for /favicon.ico on their own; answer with the icon instead of a 404 problem.
  route(app, { method: 'get', path: '/favicon.ico', hide: true, responses: { 200: { description: 'Icon' } } }, (c) =>
    c.body(CONSOLE_ASSETS.icon.body, 200, { ...COMMON_HEADERS, 'Content-Type': CONSOLE_ASSETS.icon.type, 'Cache-Control': 'public, max-age=86400' }),
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
