/**
 * The console's API client is generated from the OpenAPI document: api/console/assets/operations.ts holds
 * every operation as operationId → [method, path template, query parameter names], and the console calls
 * the API only through that table (`call('searchGallery', {k, label}, …)`). The client fills path
 * parameters and refuses query parameters the document does not declare.
 * test/console-client.test.ts regenerates the table from a live /openapi.json and fails when the checked-in
 * file differs, or when the console names an operation that is not in it.
 *
 * Regenerate: npx tsx scripts/gen-console-client.ts
 */

export type OperationRow = [method: string, path: string, query: string[]];

interface OpenApiLike {
  paths?: Record<string, Record<string, { operationId?: string; parameters?: { in: string; name: string; $ref?: string }[] } | unknown>>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

/** operationId → [METHOD, path template, query parameter names], sorted by operationId. */
export function operationTable(doc: OpenApiLike): Record<string, OperationRow> {
  const rows: [string, OperationRow][] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const shared = ((item as { parameters?: { in: string; name: string }[] }).parameters ?? []);
    for (const method of METHODS) {
      const op = item[method] as { operationId?: string; parameters?: { in: string; name: string }[] } | undefined;
      if (!op) continue;
      if (!op.operationId) throw new Error(`${method.toUpperCase()} ${path} has no operationId`);
      const query = [...shared, ...(op.parameters ?? [])].filter((p) => p.in === 'query').map((p) => p.name);
      rows.push([op.operationId, [method.toUpperCase(), path, [...new Set(query)].sort()]]);
    }
  }
  rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(rows);
}

/** The TypeScript source of api/console/assets/operations.ts. */
export function renderOperationsModule(doc: OpenApiLike): string {
  const table = operationTable(doc);
  const lines = Object.entries(table).map(([id, [method, path, query]]) => `  ${id}: [${JSON.stringify(method)}, ${JSON.stringify(path)}, ${JSON.stringify(query)}],`);
  for (const l of lines) if (l.includes('`') || l.includes('${')) throw new Error(`cannot embed ${l} in a raw string`);
  return [
    '// GENERATED from /openapi.json by `npx tsx scripts/gen-console-client.ts` (api/docs/client-gen.ts). Do not edit:',
    '// test/console-client.test.ts fails when this differs from the API.',
    '',
    '/** The console\'s operation table: operationId → [method, path template, query parameter names]. */',
    'export const CONSOLE_OPERATIONS_JS = String.raw`const OPERATIONS = {',
    ...lines,
    '};',
    '`;',
    '',
    `export const CONSOLE_OPERATION_IDS = ${JSON.stringify(Object.keys(table))} as const;`,
    '',
  ].join('\n');
}
