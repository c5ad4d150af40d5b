import { z } from 'zod';

const prob = z.number().min(0).max(1);
const range = (lo: number, hi: number) =>
  z
    .tuple([z.number(), z.number()])
    .refine(([a, b]) => a <= b, 'range must be [low, high] with low ≤ high')
    .refine(([a, b]) => a >= lo && b <= hi, `range must lie within [${lo}, ${hi}]`);

/**
 * One view's augmentation, in the order applied (as the official VICReg code): random-resized-crop, horizontal
 * flip, colour jitter, grayscale, Gaussian blur, solarisation, then normalisation. Every probability and
 * strength is a setting; `prefault` lets a partial object pick up the defaults.
 */
export const AugmentConfig = z.object({
  crop: z
    .object({
      /** Fraction of the image area kept. */
      scale: range(1e-4, 1).default([0.08, 1]),
      /** Aspect ratio (width / height) range, sampled log-uniformly. */
      ratio: range(1e-3, 1e3).default([3 / 4, 4 / 3]),
    })
    .prefault({}),
  flipP: prob.default(0.5),
  jitter: z
    .object({
      p: prob.default(0.8),
      /** Factors drawn from [1 − s, 1 + s] (brightness, contrast, saturation); hue shift from [−hue, hue] turns. */
      brightness: z.number().min(0).default(0.4),
      contrast: z.number().min(0).default(0.4),
      saturation: z.number().min(0).default(0.2),
      hue: z.number().min(0).max(0.5).default(0.1),
    })
    .prefault({}),
  grayscaleP: prob.default(0.2),
  blur: z
    .object({
      p: prob.default(0),
      sigma: range(1e-3, 100).default([0.1, 2]),
      /** Odd kernel size; default ≈ 10% of the image side (3 at 28 px, 23 at 224 px), at least 3. */
      kernelSize: z.number().int().min(1).refine((k) => k % 2 === 1, 'kernelSize must be odd').optional(),
    })
    .prefault({}),
  solarizeP: prob.default(0),
  /** Pixels ≥ threshold (in [0, 1]) are inverted; 0.5 = PIL's 128. */
  solarizeThreshold: prob.default(0.5),
  /** Subtract the dataset mean and divide by its std at the end (off only for inspecting the images). */
  normalize: z.boolean().default(true),
});
export type AugmentConfig = z.infer<typeof AugmentConfig>;
export type AugmentConfigInput = z.input<typeof AugmentConfig>;

/** A pair of view configurations (VICReg's two branches may differ, e.g. blur and solarisation). */
export interface AugmentRecipe {
  name: string;
  views: [AugmentConfig, AugmentConfig];
}

export const RECIPE_NAMES = ['official', 'small'] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

/** The official ImageNet recipe: crop 0.08–1, blur p 1.0 / 0.1, solarisation p 0 / 0.2. */
export const OFFICIAL_RECIPE: AugmentRecipe = {
  name: 'official',
  views: [
    AugmentConfig.parse({ crop: { scale: [0.08, 1] }, blur: { p: 1.0 }, solarizeP: 0 }),
    AugmentConfig.parse({ crop: { scale: [0.08, 1] }, blur: { p: 0.1 }, solarizeP: 0.2 }),
  ],
};

/**
 * For 28–64 px images (after solo-learn's CIFAR recipe; the PyTorch reference's `augment`): crop 0.2–1,
 * no blur, solarisation 0.1 on both views. The default for the CPU config.
 */
export const SMALL_RECIPE: AugmentRecipe = {
  name: 'small',
  views: [
    AugmentConfig.parse({ crop: { scale: [0.2, 1] }, blur: { p: 0 }, solarizeP: 0.1 }),
    AugmentConfig.parse({ crop: { scale: [0.2, 1] }, blur: { p: 0 }, solarizeP: 0.1 }),
  ],
};

export function recipeByName(name: string): AugmentRecipe {
  if (name === 'official') return OFFICIAL_RECIPE;
  if (name === 'small') return SMALL_RECIPE;
  throw new Error(`unknown augmentation recipe "${name}"; choose one of: ${RECIPE_NAMES.join(', ')}`);
}

/** Default blur kernel: odd, ≈ 10% of the shorter side, at least 3. */
export function blurKernelSize(view: AugmentConfig, height: number, width: number): number {
  return view.blur.kernelSize ?? Math.max(3, 2 * Math.round(0.05 * Math.min(height, width)) + 1);
}
