import { z } from 'zod';

/**
 * A linear-probe head as saved with a checkpoint (models/<v>/linear-head.json). Inputs are standardised
 * as (x − mean) / std, where `std` already includes the reference's + 1e-6, then logits = x·W + b.
 */
export const LinearHeadSchema = z
  .object({
    classNames: z.array(z.string()).optional(),
    mean: z.array(z.number()).min(1),
    std: z.array(z.number().positive()).min(1),
    /** D × C, row d = weights of input dimension d. */
    weights: z.array(z.array(z.number()).min(1)).min(1),
    bias: z.array(z.number()).min(1),
  })
  .superRefine((h, ctx) => {
    const d = h.mean.length;
    const c = h.bias.length;
    if (h.std.length !== d) ctx.addIssue({ code: 'custom', message: `std has ${h.std.length} entries, mean ${d}` });
    if (h.weights.length !== d) ctx.addIssue({ code: 'custom', message: `weights has ${h.weights.length} rows, expected ${d} (feature dim)` });
    const bad = h.weights.findIndex((row) => row.length !== c);
    if (bad >= 0) ctx.addIssue({ code: 'custom', message: `weights row ${bad} has ${h.weights[bad]!.length} columns, expected ${c} (classes)` });
    if (h.classNames && h.classNames.length !== c) {
      ctx.addIssue({ code: 'custom', message: `${h.classNames.length} class names for ${c} classes` });
    }
  });
export type LinearHead = z.infer<typeof LinearHeadSchema>;

/** Class probabilities for one feature vector, in plain JS (serving a single query needs no tensors). */
export function predictLinearVector(head: LinearHead, x: ArrayLike<number>): Float64Array {
  const d = head.mean.length;
  const c = head.bias.length;
  if (x.length !== d) throw new Error(`linear head expects ${d}-dimensional features, got ${x.length}`);
  const logits = Float64Array.from(head.bias);
  for (let i = 0; i < d; i++) {
    const v = (x[i]! - head.mean[i]!) / head.std[i]!;
    const row = head.weights[i]!;
    for (let j = 0; j < c; j++) logits[j] = logits[j]! + v * row[j]!;
  }
  return softmax(logits);
}

function softmax(z: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of z) m = Math.max(m, v);
  let s = 0;
  for (let j = 0; j < z.length; j++) {
    z[j] = Math.exp(z[j]! - m);
    s += z[j]!;
  }
  for (let j = 0; j < z.length; j++) z[j] = z[j]! / s;
  return z;
}
