import { OpenAPIHono } from '@hono/zod-openapi';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CONSOLE_ASSETS, CONSOLE_CSP, CONSOLE_PATHS, registerConsole } from '../api/console/index.js';
import type { App } from '../api/context.js';

/** The console's serving contract, without a model or a browser (test/console-browser.test.ts drives it). */
function app(): App {
  const a: App = new OpenAPIHono();
  registerConsole(a);
  return a;
}

describe('console assets', () => {
  it('serves the page at / with a same-origin-only CSP, revalidated by ETag', async () => {
    const a = app();
    const res = await a.request('/');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toMatch(/default-src 'none'/);
    expect(CONSOLE_CSP).toMatch(/connect-src 'self'/);
    const html = await res.text();
    for (const p of Object.values(CONSOLE_PATHS)) expect(html).toContain(p);
    const etag = res.headers.get('etag')!;
    expect((await a.request('/', { headers: { 'If-None-Match': etag } })).status).toBe(304);
    expect((await a.request('/console')).status).toBe(200);
  });

  it('serves content-addressed assets with their types, cached for ever', async () => {
    const a = app();
    const types = { js: 'text/javascript', css: 'text/css', icon: 'image/svg+xml' } as const;
    for (const key of ['js', 'css', 'icon'] as const) {
      const res = await a.request(CONSOLE_PATHS[key]);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain(types[key]);
      expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(await res.text()).toBe(CONSOLE_ASSETS[key].body);
      expect((await a.request(CONSOLE_PATHS[key], { headers: { 'If-None-Match': res.headers.get('etag')! } })).status).toBe(304);
    }
    expect((await a.request('/favicon.ico')).status).toBe(200);
  });

  it('the script is a valid ES module and nothing names another origin', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'console-'));
    try {
      const file = path.join(dir, 'app.mjs');
      writeFileSync(file, CONSOLE_ASSETS.js.body);
      execFileSync(process.execPath, ['--check', file], { stdio: 'pipe' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const everything = [CONSOLE_ASSETS.js.body, CONSOLE_ASSETS.css.body, CONSOLE_ASSETS.icon.body].join('\n');
    // Only XML namespace names (identifiers, never fetched) may look like URLs.
    const urls = (everything.match(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s'")]*/gi) ?? []).filter((u) => !/^http:\/\/www\.w3\.org\/2000\/svg$/.test(u));
    expect(urls).toEqual([]);
    expect(everything).not.toMatch(/@import|url\(\s*['"]?(https?:)?\/\//);
  });

  it('stays small', () => {
    const bodies = Object.values(CONSOLE_ASSETS).map((x) => x.body);
    const raw = bodies.reduce((n, b) => n + Buffer.byteLength(b), 0);
    const gz = bodies.reduce((n, b) => n + gzipSync(b).length, 0);
    console.log(`console assets: ${raw} bytes, ${gz} bytes gzip (page excluded)`);
    expect(gz).toBeLessThan(40 * 1024);
  });
});
