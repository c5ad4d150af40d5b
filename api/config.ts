import { z } from 'zod';
import { SCOPES, staticKeys, type ApiKey, type Scope } from './auth.js';
import type { ApiConfig } from './context.js';

/** A whole number setting with its bounds, named in every message. */
export const intSetting = (name: string, min: number, max: number) =>
  z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be a whole number`).min(min, `${name} must be ≥ ${min}`).max(max, `${name} must be ≤ ${max}`);

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * API keys as `name:scopes:sha256hex` entries separated by commas or newlines (`#` starts a comment line),
 * scopes `read`, `write` or `read+write`; the hex is the SHA-256 of the key, never the key. Messages name
 * the entry by position and name, never by its digest (which might be a pasted key).
 */
export const ApiKeysText = z.string().transform((text, ctx): ApiKey[] => {
  const entries = text
    .split(/[,\n]/)
    .map((e) => e.trim())
    .filter((e) => e !== '' && !e.startsWith('#'));
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  if (entries.length === 0) return fail(`no entries; write name:scopes:sha256-hex, e.g. ci-bot:read+write:<64 hex digits>`);
  const keys: ApiKey[] = [];
  for (const [i, entry] of entries.entries()) {
    const parts = entry.split(':');
    const label = `entry ${i + 1}${KEY_NAME.test(parts[0] ?? '') ? ` (${parts[0]})` : ''}`;
    if (parts.length !== 3) return fail(`${label}: expected name:scopes:sha256-hex, found ${parts.length} part${parts.length === 1 ? '' : 's'} separated by ':'`);
    const [name, scopeText, hex] = parts as [string, string, string];
    if (!KEY_NAME.test(name)) return fail(`${label}: the name must be 1-64 letters, digits, '.', '_' or '-'`);
    const scopes = scopeText.split('+');
    const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0 || scopes.length !== new Set(scopes).size)
      return fail(`${label}: scopes must be ${SCOPES.join(', ')} or ${SCOPES.join('+')}, not '${scopeText}'`);
    if (!SHA256_HEX.test(hex))
      return fail(`${label}: the third part must be the SHA-256 of the key as 64 hex digits (printf %s "$KEY" | sha256sum), not the key itself`);
    if (keys.some((k) => k.name === name)) return fail(`${label}: the name ${name} is used by an earlier entry`);
    const sha256 = Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));
    if (keys.some((k) => k.sha256.every((b, j) => b === sha256[j]))) return fail(`${label}: the same key as an earlier entry`);
    keys.push({ name, scopes: scopes as Scope[], sha256 });
  }
  return keys;
});

/** The settings every runtime reads (Node: process.env; Workers: vars and secrets). Listed in the README. */
export const CommonApiEnv = z.object({
  ADMIN_TOKEN: z.string().min(16, 'ADMIN_TOKEN must be at least 16 characters').optional(),
  CORS_ORIGINS: z.string().default('').describe("comma-separated origins, or '*'"),
  MAX_BODY_BYTES: intSetting('MAX_BODY_BYTES', 1024, 1024 ** 3).default(10 * 1024 * 1024),
  MAX_PIXELS: intSetting('MAX_PIXELS', 64, 1_000_000_000).default(40_000_000),
  BATCH_MAX: intSetting('BATCH_MAX', 1, 1024).default(64),
  BATCH_WAIT_MS: intSetting('BATCH_WAIT_MS', 0, 1000).default(5),
  POLL_INTERVAL_MS: intSetting('POLL_INTERVAL_MS', 100, 3_600_000).default(2000),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Unset: /v1 is open (api/server.ts allows that on loopback only). */
  API_KEYS: ApiKeysText.optional(),
  /** Gallery images this deployment holds at most (0: no limit). */
  GALLERY_MAX_ITEMS: intSetting('GALLERY_MAX_ITEMS', 0, 1_000_000_000).default(100_000),
});

export class ApiEnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiEnvError';
  }
}

/** Parse the schema's keys out of an environment (others ignored; empty strings count as unset). */
export function parseSettings<S extends z.ZodObject>(schema: S, env: Record<string, unknown>): z.output<S> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in schema.shape && v !== undefined && v !== ''));
  const r = schema.safeParse(cleaned);
  if (!r.success) throw new ApiEnvError(`invalid API settings: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export function apiConfig(settings: z.output<typeof CommonApiEnv>): ApiConfig {
  return {
    maxBodyBytes: settings.MAX_BODY_BYTES,
    ...(settings.ADMIN_TOKEN ? { adminToken: settings.ADMIN_TOKEN } : {}),
    corsOrigins: settings.CORS_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean),
    knnTemperature: 0.07,
    ...(settings.API_KEYS ? { apiKeys: staticKeys(settings.API_KEYS) } : {}),
    galleryMaxItems: settings.GALLERY_MAX_ITEMS,
  };
}
