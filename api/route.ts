import type { RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { App, AppEnv } from './context.js';

/**
 * Mount a handler and register its OpenAPI description in one call. Handlers parse their own bodies
 * (images arrive raw, as multipart or as JSON) with the same zod schemas the description is built from.
 */
export type Handler = (c: Context<AppEnv>) => Promise<Response> | Response;

/** Path pattern → methods, for 405 + Allow on a known path with the wrong method. */
export const routeTable = new WeakMap<App, { re: RegExp; methods: Set<string> }[]>();

/**
 * A route's description. Every documented route names its operation: `operationId` is what generated
 * clients (and the console, api/console/assets/operations.ts) call it by, so it is explicit, camelCase and
 * stable — renaming one breaks clients. Hidden routes (the console's page and assets) are not in the document.
 */
export type RouteSpec = (RouteConfig & { operationId: string; hide?: false }) | (RouteConfig & { hide: true });

/** Operation ids already taken in each app's document: two routes may not share one. */
const operationIds = new WeakMap<App, Set<string>>();
const OPERATION_ID = /^[a-z][A-Za-z0-9]*$/;

export function route(app: App, spec: RouteSpec, handler: Handler): void {
  const honoPath = spec.path.replace(/\{([^}]+)\}/g, ':$1');
  const method = spec.method.toUpperCase();
  if (!spec.hide) {
    const id = spec.operationId;
    if (!OPERATION_ID.test(id)) throw new Error(`${method} ${spec.path}: operationId ${JSON.stringify(id)} is not camelCase`);
    const taken = operationIds.get(app) ?? new Set<string>();
    if (taken.has(id)) throw new Error(`${method} ${spec.path}: operationId ${id} is already used by another route`);
    operationIds.set(app, taken.add(id));
    app.openAPIRegistry.registerPath(spec);
  }
  app.on(method, honoPath, async (c) => {
    c.set('route', honoPath);
    return handler(c);
  });
  const table = routeTable.get(app) ?? [];
  const re = new RegExp(`^${honoPath.replace(/:[^/]+/g, '[^/]+').replace(/\./g, '\\.')}/?$`);
  let entry = table.find((e) => e.re.source === re.source);
  if (!entry) table.push((entry = { re, methods: new Set() }));
  entry.methods.add(method);
  if (method === 'GET') entry.methods.add('HEAD');
  routeTable.set(app, table);
}

/**
 * Work that goes on after the response. Workers cancel a request's unfinished work once it has answered
 * unless it is handed to waitUntil; on Node there is no execution context and the event loop keeps it.
 */
export function inBackground(c: Context<AppEnv>, work: Promise<unknown>): void {
  const settled = work.catch(() => {});
  let ctx: { waitUntil(p: Promise<unknown>): void } | undefined;
  try {
    ctx = c.executionCtx;
  } catch {
    return; // Node: no ExecutionContext
  }
  ctx.waitUntil(settled);
}

export function allowedMethods(app: App, path: string): string[] | null {
  const hit = routeTable.get(app)?.find((e) => e.re.test(path));
  return hit ? [...hit.methods].sort() : null;
}

/** Common OpenAPI response entries. */
export const problemResponses = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((code) => [
      code,
      { description: PROBLEM_DESCRIPTIONS[code] ?? 'Error', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
    ]),
  );

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed JSON or invalid fields (the problem names each field)',
  401: 'Missing or wrong bearer token',
  404: 'Not found',
  409: 'Conflicts with the current state',
  413: 'Body over MAX_BODY_BYTES, or image over MAX_PIXELS',
  415: 'Unsupported Content-Type or image format',
  422: 'The image cannot be decoded',
  503: 'No model loaded yet (or admin disabled)',
};

export const imageBody = (jsonSchema: unknown, description: string) => ({
  description,
  required: true,
  content: {
    'image/*': { schema: { type: 'string', format: 'binary' } },
    'multipart/form-data': { schema: { type: 'object', properties: { image: { type: 'string', format: 'binary' } }, required: ['image'] } },
    'application/json': { schema: jsonSchema },
  },
});
