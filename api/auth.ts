import type { Context, Next } from 'hono';
import type { App, AppEnv } from './context.js';
import { ApiError } from './problem.js';

/**
 * API keys for /v1 (the admin token, api/routes/admin.ts, guards /admin). A key has a name, scopes and
 * the SHA-256 of its secret; the secret itself is never configured. `read`: embed, search, classify and
 * the read-only gallery and model routes; `write`: adding, replacing and deleting gallery images.
 */
export const SCOPES = ['read', 'write'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  name: string;
  scopes: readonly Scope[];
  /** SHA-256 of the key. */
  sha256: Uint8Array;
}

/** The configured keys, read on every request (the Node server swaps them when API_KEYS_FILE changes). */
export interface ApiKeys {
  current(): readonly ApiKey[];
}

export const staticKeys = (keys: readonly ApiKey[]): ApiKeys => ({ current: () => keys });

/** A route spec's OpenAPI `security`: an API key with `scope` (enforced by apiKeyAuth through requiredScope). */
export const needs = (scope: Scope) => [{ ApiKey: [scope] }];

/** The scope a /v1 request needs: changing the gallery needs `write`, everything else `read`. */
export function requiredScope(method: string, path: string): Scope {
  const m = method.toUpperCase();
  return /^\/v1\/images(\/|$)/.test(path) && m !== 'GET' && m !== 'HEAD' ? 'write' : 'read';
}

/**
 * Declares the ApiKey security scheme and, when keys are configured, requires one on every /v1 route.
 * Without keys /v1 stays open (the local demo; api/server.ts allows that on loopback only).
 */
export function registerApiKeys(app: App, keys: ApiKeys | undefined): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'ApiKey', {
    type: 'http',
    scheme: 'bearer',
    description:
      "An API key from API_KEYS, as Authorization: Bearer <key>. Scopes: 'read' (embed, search, classify, list), 'write' (add, replace, delete gallery images). " +
      'Missing or unknown key: 401; key without the scope: 403. A deployment without API_KEYS does not check keys.',
  });
  if (keys) app.use('/v1/*', apiKeyAuth(keys));
}

const BEARER = /^Bearer\s+(.+)$/i;

export function apiKeyAuth(keys: ApiKeys) {
  return async (c: Context<AppEnv>, next: Next) => {
    const scope = requiredScope(c.req.method, c.req.path);
    const m = BEARER.exec(c.req.header('authorization') ?? '');
    const challenge = (extra = '') => ({ 'WWW-Authenticate': `Bearer realm="api", scope="${scope}"${extra}` });
    if (!m)
      throw new ApiError(401, 'unauthorized', 'Unauthorized', `send an API key with the '${scope}' scope as Authorization: Bearer <key>`, { requiredScope: scope }, challenge());
    const key = await findKey(keys.current(), m[1]!.trim());
    if (!key)
      throw new ApiError(401, 'unauthorized', 'Unauthorized', `the API key is not one of this deployment's keys (API_KEYS); a key with the '${scope}' scope is needed`, { requiredScope: scope }, challenge(', error="invalid_token"'));
    if (!key.scopes.includes(scope))
      throw new ApiError(
        403,
        'insufficient-scope',
        'Forbidden',
        `API key '${key.name}' has the scope${key.scopes.length > 1 ? 's' : ''} ${key.scopes.join('+')}; ${c.req.method} ${c.req.path} needs '${scope}'`,
        { requiredScope: scope },
        challenge(', error="insufficient_scope"'),
      );
    await next();
  };
}

/** The key whose digest matches; every configured digest is compared, in constant time. */
async function findKey(keys: readonly ApiKey[], presented: string): Promise<ApiKey | null> {
  const d = await sha256(presented);
  let found: ApiKey | null = null;
  for (const k of keys) if (timingSafeEqual(d, k.sha256) && !found) found = k;
  return found;
}

export async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(s)));
}

export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
