import { z } from 'zod';

/** Backbone: a ResNet family member. `small` stem = 3×3 conv stride 1 (28–64 px); `large` = 7×7/2 + max-pool. */
export const BackboneConfig = z.object({
  stem: z.enum(['small', 'large']).default('small'),
  widths: z.array(z.number().int().positive()).min(1).default([16, 32, 64, 128]),
  blocks: z.array(z.number().int().positive()).min(1).default([1, 1, 1, 1]),
  block: z.enum(['basic', 'bottleneck']).default('basic'),
  inputSize: z.number().int().min(8).max(1024).default(28),
  channels: z.union([z.literal(1), z.literal(3)]).default(1),
});
export type BackboneConfig = z.infer<typeof BackboneConfig>;

export const ModelConfig = z.object({
  backbone: BackboneConfig.default(BackboneConfig.parse({})),
  /** Expander widths, "512-512-512": Linear-BN-ReLU for all but the last, which is Linear without bias. */
  expander: z.string().regex(/^\d+(-\d+)*$/, 'expander must look like 512-512-512').default('512-512-512'),
});
export type ModelConfig = z.infer<typeof ModelConfig>;

/** The default CPU network: the one in ../shared/ref/torch_vicreg.py. */
export const DEFAULT_CPU_MODEL: ModelConfig = ModelConfig.parse({});

export function expanderDims(spec: string): number[] {
  return spec.split('-').map((s) => Number(s));
}

/** Representation dimension = last stage width (× 4 for bottleneck blocks). */
export function representationDim(b: BackboneConfig): number {
  const last = b.widths[b.widths.length - 1]!;
  return b.block === 'bottleneck' ? last * 4 : last;
}
