import { z } from 'zod';
import type { ApiConfig } from './context.js';

/** A whole number setting with its bounds, named in every message. */
export const intSetting = (name: string, min: number, max: number) =>
  z.coerce.number({ error: `${name} must be a number` }).int(`${name} must be a whole number`).min(min, `${name} must be ≥ ${min}`).max(max, `${name} must be ≤ ${max}`);

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
  };
}
