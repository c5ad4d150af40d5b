import { z } from 'zod';

/** What a run's eval.json holds: the encoder's scores and, beside them, the raw-pixel baselines. */
const fraction = z.number().min(0).max(1);

export const KnnMetrics = z.object({ k: z.number().int().positive(), temperature: z.number().positive(), top1: fraction, top5: fraction });
export type KnnMetrics = z.infer<typeof KnnMetrics>;

export const LinearMetrics = z.object({
  top1: fraction,
  top5: fraction,
  epochs: z.number().int().nonnegative(),
  optimizer: z.enum(['adam', 'sgd']),
  seconds: z.number().nonnegative().optional(),
});
export type LinearMetrics = z.infer<typeof LinearMetrics>;

export const StatsMetrics = z.object({ std: z.number(), normStd: z.number(), effectiveRank: z.number() });

export const FeatureEval = z.object({
  dim: z.number().int().positive(),
  knn: z.array(KnnMetrics),
  linear: LinearMetrics.optional(),
  /** counts[true][predicted] on the test split; from the linear probe when there is one, else kNN. */
  confusion: z.object({ source: z.enum(['linear', 'knn']), matrix: z.array(z.array(z.number().int().nonnegative())) }).optional(),
  /** Collapse statistics of the test features (shared/eval/collapse.ts). */
  stats: StatsMetrics.optional(),
});
export type FeatureEval = z.infer<typeof FeatureEval>;

export const EvalResultSchema = z.looseObject({
  checkpoint: z.string().optional(),
  dataset: z.string(),
  /** Which images `testCount` and every score are from: the validation split (for choosing) or the test split (for reporting). */
  split: z.enum(['validation', 'test']).optional(),
  trainCount: z.number().int().nonnegative(),
  testCount: z.number().int().nonnegative(),
  numClasses: z.number().int().positive(),
  classNames: z.array(z.string()).optional(),
  encoder: FeatureEval,
  raw: FeatureEval.optional(),
  backend: z.string().optional(),
  seconds: z.number().nonnegative().optional(),
  createdAt: z.string().optional(),
});
export type EvalResult = z.infer<typeof EvalResultSchema>;

/** The flat figures the eval CLI prints as its last line (issue 3): encoder beside raw pixels. */
export function headlineSummary(r: EvalResult): Record<string, string | number | null> {
  const knnAt = (f: FeatureEval | undefined, k: number) => f?.knn.find((m) => m.k === k) ?? null;
  const first = (f: FeatureEval | undefined) => knnAt(f, 20) ?? f?.knn[0] ?? null;
  return {
    checkpoint: r.checkpoint ?? null,
    dataset: r.dataset,
    split: r.split ?? null,
    knn_top1: first(r.encoder)?.top1 ?? null,
    knn_top5: first(r.encoder)?.top5 ?? null,
    knn200_top1: knnAt(r.encoder, 200)?.top1 ?? null,
    linear_top1: r.encoder.linear?.top1 ?? null,
    linear_top5: r.encoder.linear?.top5 ?? null,
    raw_knn_top1: first(r.raw)?.top1 ?? null,
    raw_linear_top1: r.raw?.linear?.top1 ?? null,
    effective_rank: r.encoder.stats?.effectiveRank ?? null,
  };
}
