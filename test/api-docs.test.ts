import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DOCS_ASSETS, DOCS_CSP, DOCS_PATHS } from '../api/docs/index.js';
import { documentationApp } from '../api/docs/document.js';

/** /docs serves a reference page from its own assets only (test/docs-browser.test.ts renders it in Chromium). */
describe('API docs', () => {
  it('serves /docs with a same-origin-only CSP, naming its content-addressed assets', async () => {
    const app = documentationApp();
    const res = await app.request('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toBe(DOCS_CSP);
    expect(DOCS_CSP).toMatch(/default-src 'none'/);
    expect(DOCS_CSP).not.toMatch(/https?:|unsafe/);
    const html = await res.text();
    for (const p of Object.values(DOCS_PATHS)) expect(html).toContain(p);
    expect((await app.request('/docs', { headers: { 'If-None-Match': res.headers.get('etag')! } })).status).toBe(304);
    for (const key of ['js', 'css'] as const) {
      const a = await app.request(DOCS_PATHS[key]);
      expect(a.status).toBe(200);
      expect(a.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(await a.text()).toBe(DOCS_ASSETS[key].body);
    }
  });

  it('the script is a valid ES module, nothing names another origin, and it is small', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'docs-'));
    try {
      writeFileSync(path.join(dir, 'docs.mjs'), DOCS_ASSETS.js.body);
      execFileSync(process.execPath, ['--check', path.join(dir, 'docs.mjs')], { stdio: 'pipe' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const html = await (await documentationApp().request('/docs')).text();
    const everything = [html, DOCS_ASSETS.js.body, DOCS_ASSETS.css.body].join('\n');
    expect(everything.match(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s'")]*/gi) ?? []).toEqual([]);
    expect(everything).not.toMatch(/@import|url\(|@font-face/);
    const gz = [html, DOCS_ASSETS.js.body, DOCS_ASSETS.css.body].reduce((n, b) => n + gzipSync(b).length, 0);
    console.log(`docs page + assets: ${gz} bytes gzip`);
    expect(gz).toBeLessThan(16 * 1024);
  });
});
