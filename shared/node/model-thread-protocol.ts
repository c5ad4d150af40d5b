/**
 * Messages between the main thread and the model thread (shared/node/model-thread.ts). Inputs and
 * outputs travel as transferred Float32Array buffers (moved, not copied).
 */
import { z } from 'zod';

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected a Uint8Array');
const floats = z.custom<Float32Array>((v) => v instanceof Float32Array, 'expected a Float32Array');

/** workerData: how the model thread picks its compute backend. */
export const ModelThreadInit = z.object({
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']),
  /** wasm threads inside the model thread (1 = no pthread pool). */
  threads: z.number().int().min(1).max(64),
  /** Environment for backend selection (VICREG_BACKEND etc. are read from here). */
  env: z.record(z.string(), z.string().optional()),
});
export type ModelThreadInit = z.infer<typeof ModelThreadInit>;

export const ToModelThread = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('load'),
    /** The verified checkpoint files (tfjs layers format). */
    modelJson: bytes,
    weightsBin: bytes,
    inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
    dimension: z.number().int().positive(),
  }),
  z.object({ type: z.literal('forward'), id: z.number().int(), input: floats, n: z.number().int().positive() }),
]);
export type ToModelThread = z.infer<typeof ToModelThread>;

export type FromModelThread =
  | { type: 'ready'; backend: string }
  /** forward: the compiled serving graph, or predict when the graph could not be used. */
  | { type: 'loaded'; forward: 'graph' | 'predict' }
  | { type: 'result'; id: number; output: Float32Array }
  /** id absent: the load or the thread's start failed. */
  | { type: 'error'; id?: number; message: string };
