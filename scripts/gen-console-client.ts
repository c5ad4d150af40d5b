/**
 * Regenerates api/console/assets/operations.ts — the console's API client table — from the API's OpenAPI
 * document (see api/docs/client-gen.ts). Run after adding or changing a route:
 *   npx tsx scripts/gen-console-client.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderOperationsModule } from '../api/docs/client-gen.js';
import { openApiDocument } from '../api/docs/document.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'api/console/assets/operations.ts');
writeFileSync(out, renderOperationsModule(await openApiDocument()));
console.log(`wrote ${path.relative(root, out)}`);
