import { z } from 'zod';

/**
 * Progress events: one JSON object per line of a run's progress.jsonl, written by the trainer and read by
 * the report. Unknown keys are kept (loose objects) so the trainer can add fields without breaking old
 * readers. `type` is the discriminator; the training loop's in-memory `event` key is accepted as an alias.
 */
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
// Metrics of a diverged run are NaN, which JSON.stringify writes as null.
const num = z.number().nullable();

export const StepEvent = z.looseObject({
  type: z.literal('step'),
  step: z.number().int().nonnegative(),
  epoch: z.number().nonnegative(),
  loss: num,
  invariance: num,
  variance: num,
  covariance: num,
  lr: finite,
  imagesPerSec: num.optional(),
  etaSeconds: num.optional(),
  /** Wall clock, ms since the Unix epoch (Date.now()). */
  t: finite.optional(),
  totalSteps: z.number().int().optional(),
  elapsedSeconds: finite.optional(),
  /** Health figures may ride on a step event instead of a separate 'health' line. */
  std: num.optional(),
  normStd: num.optional(),
  effectiveRank: num.optional(),
});

/** Representation health (shared/eval/collapse.ts) measured every N steps. */
export const HealthEvent = z.looseObject({
  type: z.literal('health'),
  step: z.number().int().nonnegative(),
  std: num,
  normStd: num.optional(),
  effectiveRank: num,
  t: finite.optional(),
});

/** End of an epoch; knnTop1 when the trainer ran a kNN monitor on the validation split. */
export const EpochEvent = z.looseObject({
  type: z.literal('epoch'),
  epoch: z.number().int().nonnegative(),
  step: z.number().int().nonnegative(),
  knnTop1: z.number().min(0).max(1).optional(),
  seconds: finite,
  t: finite.optional(),
});

export const StartEvent = z.looseObject({
  type: z.literal('start'),
  config: z.unknown(),
  backend: z.string(),
  t: finite.optional(),
});

export const EndEvent = z.looseObject({
  type: z.literal('end'),
  t: finite.optional(),
});

export const ProgressEventSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !('type' in v) && 'event' in v ? { ...v, type: (v as { event: unknown }).event } : v),
  z.discriminatedUnion('type', [StepEvent, HealthEvent, EpochEvent, StartEvent, EndEvent]),
);
export type ProgressEvent = z.infer<typeof ProgressEventSchema>;
export type StepEvent = z.infer<typeof StepEvent>;
export type HealthEvent = z.infer<typeof HealthEvent>;
export type EpochEvent = z.infer<typeof EpochEvent>;

export interface ProgressParseResult {
  events: ProgressEvent[];
  /** Lines that were not valid events, with 1-based line numbers (a run killed mid-write leaves one). */
  errors: { line: number; message: string }[];
}

/** Parses progress.jsonl text; blank lines are skipped, bad lines reported rather than fatal. */
export function parseProgressLines(text: string): ProgressParseResult {
  const events: ProgressEvent[] = [];
  const errors: { line: number; message: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (e) {
      errors.push({ line: i + 1, message: `not JSON: ${(e as Error).message}` });
      return;
    }
    const r = ProgressEventSchema.safeParse(json);
    if (r.success) events.push(r.data);
    else errors.push({ line: i + 1, message: z.prettifyError(r.error).replace(/\n/g, '; ') });
  });
  return { events, errors };
}

/**
 * Serialises one event as a progress.jsonl line, validated as it will be read back (so a writer cannot
 * emit what readers reject). NaN/Infinity metrics of a diverging run become null rather than throwing.
 */
export function progressLine(event: ProgressEvent | Record<string, unknown>): string {
  const json: unknown = JSON.parse(JSON.stringify(event));
  const r = ProgressEventSchema.safeParse(json);
  if (!r.success) throw new Error(`progress event is invalid: ${z.prettifyError(r.error).replace(/\n/g, '; ')}`);
  return JSON.stringify(json) + '\n';
}
