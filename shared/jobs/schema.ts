import { z } from 'zod';
import { ModelConfig } from '../model/config.js';

/**
 * Retraining jobs as stored in the bucket: `jobs/<id>.json`. The API writes the request (state
 * `queued`); workers claim it with a lease and write state, progress, metrics and the result.
 */

/** Defaults applied by the worker when a request leaves a field out (see `resolveRequest`). */
export const REQUEST_DEFAULTS = {
  epochs: 3,
  batchSize: 256,
  seed: 0,
  recipe: 'small' as const,
  ablation: { lambda: 25, mu: 25, nu: 1 },
  force: false,
};

/** Upper bounds keep a typo (epochs: 1e9) from occupying a worker for ever. */
export const DatasetSpec = z
  .strictObject({
    kind: z.enum(['fashion-mnist', 'folder', 'gallery']).describe(
      "'fashion-mnist': the installed idx files; 'folder': class sub-folders under path (on the worker's disk); " +
        "'gallery': the API's gallery images in the bucket",
    ),
    path: z.string().min(1).max(4096).optional().describe("required for kind 'folder'"),
    limit: z.number().int().positive().max(10_000_000).optional().describe('use at most this many training images'),
  })
  .refine((d) => d.kind !== 'folder' || d.path !== undefined, {
    message: "dataset.path is required when dataset.kind is 'folder'",
    path: ['path'],
  });
export type DatasetSpec = z.infer<typeof DatasetSpec>;

export const Ablation = z.strictObject({
  lambda: z.number().min(0).max(1000).describe('invariance weight λ (default 25)'),
  mu: z.number().min(0).max(1000).describe('variance weight μ (default 25)'),
  nu: z.number().min(0).max(1000).describe('covariance weight ν (default 1)'),
});
export type Ablation = z.infer<typeof Ablation>;

export const RetrainRequest = z.strictObject({
  dataset: DatasetSpec,
  epochs: z.number().int().min(1).max(1000).optional().describe('passes over the data (default 3)'),
  maxSteps: z.number().int().min(1).max(10_000_000).optional().describe('stop after this many optimiser steps'),
  maxMinutes: z.number().positive().max(60 * 24 * 30).optional().describe('stop training after this wall time'),
  batchSize: z.number().int().min(2).max(8192).optional().describe('images per step (default 256)'),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional().describe('seed for init, shuffling and views (default 0)'),
  model: ModelConfig.optional().describe('network; omitted fields take the default CPU network'),
  recipe: z.enum(['official', 'small']).optional().describe("augmentation recipe (default 'small')"),
  ablation: Ablation.optional().describe('loss weights (default λ=25, μ=25, ν=1)'),
  force: z.boolean().optional().describe('move latest even if the new model evaluates worse (default false)'),
  init: z
    .union([z.literal('latest'), z.string().regex(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/, "init: 'latest' or a version like 20261128T231500Z-a1b2c3")])
    .optional()
    .describe("warm start from a published model ('latest' or a version) of the same network; recorded as the new version's parent"),
});
export type RetrainRequest = z.infer<typeof RetrainRequest>;
export type RetrainRequestInput = z.input<typeof RetrainRequest>;

/** A request with every default filled in: what the worker actually runs. */
export interface ResolvedRequest {
  dataset: DatasetSpec;
  epochs: number;
  maxSteps?: number;
  maxMinutes?: number;
  batchSize: number;
  seed: number;
  model: ModelConfig;
  recipe: 'official' | 'small';
  ablation: Ablation;
  force: boolean;
  /** Warm start: 'latest' or a version. */
  init?: string;
}

export function resolveRequest(r: RetrainRequest): ResolvedRequest {
  return {
    dataset: r.dataset,
    epochs: r.epochs ?? REQUEST_DEFAULTS.epochs,
    ...(r.maxSteps !== undefined ? { maxSteps: r.maxSteps } : {}),
    ...(r.maxMinutes !== undefined ? { maxMinutes: r.maxMinutes } : {}),
    batchSize: r.batchSize ?? REQUEST_DEFAULTS.batchSize,
    seed: r.seed ?? REQUEST_DEFAULTS.seed,
    model: r.model ?? ModelConfig.parse({}),
    recipe: r.recipe ?? REQUEST_DEFAULTS.recipe,
    ablation: r.ablation ?? { ...REQUEST_DEFAULTS.ablation },
    force: r.force ?? REQUEST_DEFAULTS.force,
    ...(r.init !== undefined ? { init: r.init } : {}),
  };
}

export const JobState = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** Letters, digits, '.', '_', '-': safe as an object-key segment and in a URL path. */
export const JobId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'job id: 1–128 of A–Z a–z 0–9 . _ - (not starting with . _ -)');

const IsoTime = z.string().datetime();

export const Lease = z.object({
  owner: z.string().min(1),
  expiresAt: IsoTime,
  heartbeatAt: IsoTime,
});
export type Lease = z.infer<typeof Lease>;

/** Bounds: the job file is rewritten every few seconds, so it must stay small. */
export const MAX_LOSS_HISTORY = 200;
export const MAX_LOG_TAIL = 50;

export const JobProgress = z.object({
  epoch: z.number().int().min(0),
  step: z.number().int().min(0),
  totalSteps: z.number().int().min(0),
  loss: z.number(),
  invariance: z.number(),
  variance: z.number(),
  covariance: z.number(),
  lr: z.number(),
  imagesPerSec: z.number(),
  etaSeconds: z.number(),
  /** Latest representation diagnostics (mean per-dimension std, RankMe); null until first measured. */
  std: z.number().nullable(),
  effectiveRank: z.number().nullable(),
  /** Down-sampled [step, loss] pairs, oldest first, at most MAX_LOSS_HISTORY. */
  lossHistory: z.array(z.tuple([z.number(), z.number()])).max(MAX_LOSS_HISTORY),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const JobResult = z.object({
  version: z.string(),
  published: z.boolean(),
  activated: z.boolean(),
  rejectedReason: z.string().optional(),
});
export type JobResult = z.infer<typeof JobResult>;

export const JobFile = z.object({
  id: JobId,
  request: RetrainRequest,
  state: JobState,
  createdAt: IsoTime,
  updatedAt: IsoTime,
  lease: Lease.optional(),
  cancelRequested: z.boolean().optional(),
  /** How many times a worker has claimed it (>1 means it was resumed after a lost lease). */
  attempts: z.number().int().min(0).default(0),
  /** The compute backend the last attempt ran on (e.g. "wasm", "tensorflow"). */
  backend: z.string().optional(),
  progress: JobProgress.optional(),
  /** Evaluation and diagnostics after training, e.g. knnAccuracy, linearAccuracy, std, effectiveRank. */
  metrics: z.record(z.string(), z.number().nullable()).optional(),
  result: JobResult.optional(),
  error: z.string().optional(),
  logTail: z.array(z.string()).max(MAX_LOG_TAIL).default([]),
});
export type JobFile = z.infer<typeof JobFile>;

export const JOBS_PREFIX = 'jobs/';
export const jobKey = (id: string): string => `${JOBS_PREFIX}${id}.json`;
/** Resumable training state lives beside the job file. */
export const jobStatePrefix = (id: string): string => `${JOBS_PREFIX}${id}/state/`;
const JOB_KEY_RE = /^jobs\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.json$/;
export function jobIdFromKey(key: string): string | null {
  return JOB_KEY_RE.exec(key)?.[1] ?? null;
}

/** Append to a bounded log tail (drops the oldest lines). */
export function appendLog(tail: readonly string[], line: string): string[] {
  const out = [...tail, line.length > 500 ? `${line.slice(0, 497)}...` : line];
  return out.length > MAX_LOG_TAIL ? out.slice(out.length - MAX_LOG_TAIL) : out;
}

/**
 * Add a point and down-sample to at most `max` points: keep steps on the coarsest-needed power-of-two
 * grid (so spacing stays even over the whole run) plus the newest point.
 */
export function pushLossHistory(
  history: readonly (readonly [number, number])[],
  point: readonly [number, number],
  max = MAX_LOSS_HISTORY,
): [number, number][] {
  const all = [...history, point].map(([s, l]) => [s, l] as [number, number]);
  const last = all.length - 1;
  for (let stride = 1; ; stride *= 2) {
    const kept = all.filter(([s], i) => s % stride === 0 || i === last);
    if (kept.length <= max) return kept;
  }
}
