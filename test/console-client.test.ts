import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { CONSOLE_ASSETS } from '../api/console/index.js';
import { CONSOLE_OPERATIONS_JS } from '../api/console/assets/operations.js';
import { operationTable, renderOperationsModule } from '../api/docs/client-gen.js';
import { openApiDocument } from '../api/docs/document.js';

/**
 * The console calls the API only through a table generated from /openapi.json, so the two cannot drift:
 * the table must be what the live document generates, and every operation the console names must be in it.
 */
const GENERATED = path.resolve(import.meta.dirname, '../api/console/assets/operations.ts');
const JS = CONSOLE_ASSETS.js.body;

/** The console script with its generated table cut out. */
const handWritten = JS.replace(CONSOLE_OPERATIONS_JS, '');

describe('console API client', () => {
  it('its operation table is what /openapi.json generates (else: npx tsx scripts/gen-console-client.ts)', async () => {
    const doc = await openApiDocument();
    expect(readFileSync(GENERATED, 'utf8'), 'api/console/assets/operations.ts is stale: run npx tsx scripts/gen-console-client.ts').toBe(renderOperationsModule(doc as never));
    expect(JS).toContain(CONSOLE_OPERATIONS_JS);
  });

  it('names only operations of the document, and no API path by hand', async () => {
    const table = operationTable((await openApiDocument()) as never);
    const named = [...handWritten.matchAll(/\b(?:call|href)\(\s*'([^']+)'/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThanOrEqual(15);
    for (const id of new Set(named)) expect(Object.keys(table), `the console calls ${id}`).toContain(id);
    // fetch goes through call() only, and no /v1 or /admin path is spelled out outside the table.
    expect([...handWritten.matchAll(/\bfetch\(/g)]).toHaveLength(1);
    expect(handWritten).not.toMatch(/['"]\/(v1|admin)\b/);
  });

  it('builds URLs from the table: path parameters encoded, undeclared query parameters refused', () => {
    const hrefSrc = /function href\(operationId, params\) \{[\s\S]*?\n\}\n/.exec(JS)?.[0];
    expect(hrefSrc).toBeTruthy();
    const href = runInNewContext(`${CONSOLE_OPERATIONS_JS}\nconst enc = encodeURIComponent;\n${hrefSrc}\nhref`) as (id: string, p?: object) => string;
    expect(href('getImageContent', { id: 'a b/c' })).toBe('/v1/images/a%20b%2Fc/content');
    expect(href('searchGallery', { k: 5, label: undefined })).toBe('/v1/search?k=5');
    expect(href('listModels')).toBe('/v1/models');
    expect(() => href('searchGallery', { topK: 5 })).toThrow(/no query parameter topK/);
    expect(() => href('getJob', {})).toThrow(/path parameter id/);
    expect(() => href('noSuchOperation')).toThrow(/no operation/);
  });
});
