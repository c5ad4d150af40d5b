import { z } from 'zod';

/**
 * S3-compatible store settings, read from the environment. Works for AWS S3, Cloudflare R2
 * (S3_REGION=auto), MinIO and the local s3rver. Credentials are optional: without them the SDK's default
 * chain (env, profile, instance role) is used.
 */
export const S3Config = z
  .object({
    endpoint: z.url({ message: 'S3_ENDPOINT must be a URL such as http://127.0.0.1:4568' }).optional(),
    region: z.string().min(1).default('us-east-1'),
    bucket: z
      .string()
      .min(3, 'S3_BUCKET must be 3–63 characters')
      .max(63, 'S3_BUCKET must be 3–63 characters')
      .default('vicreg'),
    forcePathStyle: z.boolean().optional(),
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    /** Whether the server enforces If-Match / If-None-Match on PutObject (s3rver does not). */
    supportsConditionalWrites: z.boolean().default(true),
    /** Page size for listings; only tests lower it (to exercise pagination). */
    listPageSize: z.number().int().min(1).max(1000).default(1000),
    /**
     * How long the store may stay silent (connecting, or no bytes either way mid-request) before the
     * attempt fails. Silence, not total time: a large checkpoint upload that keeps moving is never cut.
     */
    timeoutMs: z
      .number()
      .int('must be a whole number of milliseconds')
      .min(100, 'must be at least 100 (milliseconds)')
      .max(600_000, 'must be at most 600000 (10 minutes)')
      .default(10_000),
  })
  .refine((c) => (c.accessKeyId === undefined) === (c.secretAccessKey === undefined), {
    message: 'set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (to use the default credential chain)',
  })
  .transform((c) => ({ ...c, forcePathStyle: c.forcePathStyle ?? c.endpoint !== undefined }));
export type S3Config = z.output<typeof S3Config>;
export type S3ConfigInput = z.input<typeof S3Config>;

const boolFromEnv = (name: string) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], {
      message: `${name} must be true or false`,
    })
    .transform((v) => v === 'true' || v === '1' || v === 'yes')
    .optional();

export const S3Env = z.object({
  S3_ENDPOINT: z.string().min(1).optional(),
  S3_REGION: z.string().min(1).optional(),
  S3_BUCKET: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: boolFromEnv('S3_FORCE_PATH_STYLE'),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_CONDITIONAL_WRITES: boolFromEnv('S3_CONDITIONAL_WRITES'),
  S3_TIMEOUT_MS: z
    .string()
    .regex(/^\d+$/, 'S3_TIMEOUT_MS must be a whole number of milliseconds')
    .transform(Number)
    .optional(),
});

/** Thrown when the environment does not describe a usable store; the message lists every problem. */
export class S3ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'S3ConfigError';
  }
}

const ENV_NAMES: Record<string, string> = {
  endpoint: 'S3_ENDPOINT',
  region: 'S3_REGION',
  bucket: 'S3_BUCKET',
  forcePathStyle: 'S3_FORCE_PATH_STYLE',
  accessKeyId: 'S3_ACCESS_KEY_ID',
  secretAccessKey: 'S3_SECRET_ACCESS_KEY',
  supportsConditionalWrites: 'S3_CONDITIONAL_WRITES',
  timeoutMs: 'S3_TIMEOUT_MS',
};

function describe(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const field = i.path.map(String).join('.');
      return field ? `${ENV_NAMES[field] ?? field}: ${i.message}` : i.message;
    })
    .join('; ');
}

/**
 * The embedded default: with no S3_ENDPOINT the main command starts the local s3rver. (To use AWS S3 set
 * S3_ENDPOINT=https://s3.<region>.amazonaws.com; for R2 https://<account>.r2.cloudflarestorage.com.)
 */
export function wantsLocalS3(env: Record<string, string | undefined>): boolean {
  return !env['S3_ENDPOINT'];
}

/**
 * Parse S3 settings from an environment record (process.env on Node, the bindings object on Workers).
 * Empty strings count as unset; `overrides` win (e.g. the local server's endpoint).
 */
export function s3ConfigFromEnv(
  env: Record<string, string | undefined>,
  overrides: Partial<S3ConfigInput> = {},
): S3Config {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('S3_') && v !== undefined && v !== '') cleaned[k] = v;
  const e = S3Env.safeParse(cleaned);
  if (!e.success) throw new S3ConfigError(`invalid S3 settings: ${describe(e.error)}`);
  const v = e.data;
  const input: S3ConfigInput = {
    endpoint: v.S3_ENDPOINT,
    region: v.S3_REGION,
    bucket: v.S3_BUCKET,
    forcePathStyle: v.S3_FORCE_PATH_STYLE,
    accessKeyId: v.S3_ACCESS_KEY_ID,
    secretAccessKey: v.S3_SECRET_ACCESS_KEY,
    supportsConditionalWrites: v.S3_CONDITIONAL_WRITES,
    timeoutMs: v.S3_TIMEOUT_MS,
    ...overrides,
  };
  return parseS3Config(input);
}

export function parseS3Config(input: S3ConfigInput): S3Config {
  const r = S3Config.safeParse(input);
  if (!r.success) {
    throw new S3ConfigError(`invalid S3 settings: ${describe(r.error)}`);
  }
  return r.data;
}
