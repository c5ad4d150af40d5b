export interface LrSchedule {
  /** Base learning rate per 256 images (VICReg: 0.3). */
  baseLr?: number;
  batchSize: number;
  totalSteps: number;
  warmupSteps: number;
  /** The cosine ends at finalRatio × peak (VICReg: 0.001). */
  finalRatio?: number;
}

/** Peak learning rate: base × batch / 256 (the linear scaling rule used by VICReg). */
export function peakLearningRate(s: Pick<LrSchedule, 'baseLr' | 'batchSize'>): number {
  return ((s.baseLr ?? 0.3) * s.batchSize) / 256;
}

/**
 * Learning rate at `step` (0-based): linear warm-up from 0 to the peak over warmupSteps, then cosine decay
 * from the peak to finalRatio × peak at totalSteps (as in the official VICReg code's adjust_learning_rate).
 */
export function learningRateAt(step: number, s: LrSchedule): number {
  const peak = peakLearningRate(s);
  const warm = Math.max(0, s.warmupSteps);
  if (step < warm) return (peak * step) / warm;
  const end = peak * (s.finalRatio ?? 0.001);
  const span = Math.max(1, s.totalSteps - warm);
  const t = Math.min(1, Math.max(0, (step - warm) / span));
  const q = 0.5 * (1 + Math.cos(Math.PI * t));
  return end + (peak - end) * q;
}

/** Warm-up length as in the PyTorch reference: a tenth of the run, at most two epochs. */
export function defaultWarmupSteps(totalSteps: number, stepsPerEpoch: number): number {
  return Math.min(Math.floor(totalSteps / 10), 2 * stepsPerEpoch);
}
