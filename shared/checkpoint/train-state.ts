import { z } from 'zod';
import type { ObjectStore } from '../store/object-store.js';
import type { RngState } from '../util/rng.js';
import { zodMessage } from './manifest.js';
import { sha256Hex } from './sha256.js';

/**
 * Resumable training state: everything a run needs to continue exactly where it stopped. Stored as one
 * binary blob (all Float32Arrays, little-endian, back to back) plus a small JSON pointer that describes
 * it and carries its sha256. The blob is written first and the pointer last, so a reader never sees a
 * pointer to a partial blob.
 *
 *   <prefix>state.json               the pointer (this is what loadTrainState reads)
 *   <prefix>blobs/step-<n>-<hex>.bin the tensors
 */
export interface TrainState {
  step: number;
  epoch: number;
  /** One generator's state, or several by name (e.g. { data, augment }). */
  rng: RngState | Record<string, RngState>;
  /** Model weights by variable name. */
  weights: Record<string, Float32Array>;
  /** Optimizer slots (momenta, LARS buffers, …) in the optimizer's own order. */
  optimizerSlots: Float32Array[];
  /** Config, job id, loss history, … anything JSON. */
  meta: Record<string, unknown>;
}

const U32 = z.number().int().min(0).max(0xffffffff);
const RngStateSchema = z.tuple([U32, U32, U32, U32]);

const TensorEntry = z.object({
  name: z.string(),
  /** Offset and length in float32 elements. */
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
});

export const TrainStatePointer = z.object({
  schemaVersion: z.literal(1),
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  rng: z.union([RngStateSchema, z.record(z.string(), RngStateSchema)]),
  meta: z.record(z.string(), z.unknown()),
  savedAt: z.iso.datetime(),
  blob: z.object({ key: z.string().min(1), sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }),
  weights: z.array(TensorEntry),
  optimizerSlots: z.array(TensorEntry),
});
export type TrainStatePointer = z.infer<typeof TrainStatePointer>;

/** A snapshot that cannot be used; names the object at fault. */
export class TrainStateError extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`training state ${key} ${reason}`);
    this.name = 'TrainStateError';
  }
}

const pointerKey = (prefix: string) => `${withSlash(prefix)}state.json`;

function withSlash(prefix: string): string {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

function isLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

export interface SaveTrainStateResult {
  pointer: TrainStatePointer;
  etag: string;
}

/**
 * Snapshot `state` under `prefix` (e.g. jobs/<id>/state/). Writes the blob, then moves the pointer with
 * a compare-and-swap against the pointer read just before (so two trainers writing the same job collide
 * with a PreconditionFailedError instead of interleaving), then deletes the previous blob.
 */
export async function saveTrainState(
  store: ObjectStore,
  prefix: string,
  state: TrainState,
  opts: { clock?: () => Date } = {},
): Promise<SaveTrainStateResult> {
  if (!isLittleEndian()) throw new Error('training state snapshots assume a little-endian machine');
  if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`step must be a non-negative integer, got ${state.step}`);
  const weightEntries = Object.entries(state.weights);
  const arrays = [...weightEntries.map(([, a]) => a), ...state.optimizerSlots];
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const blob = new Float32Array(total);
  const layout = (names: string[], list: Float32Array[], start: number) => {
    let off = start;
    return list.map((a, i) => {
      blob.set(a, off);
      const e = { name: names[i]!, offset: off, length: a.length };
      off += a.length;
      return e;
    });
  };
  const weights = layout(weightEntries.map(([n]) => n), weightEntries.map(([, a]) => a), 0);
  const wTotal = weights.reduce((n, e) => n + e.length, 0);
  const optimizerSlots = layout(state.optimizerSlots.map((_, i) => `slot${i}`), state.optimizerSlots, wTotal);
  const bytes = new Uint8Array(blob.buffer);
  const sha256 = await sha256Hex(bytes);

  const p = withSlash(prefix);
  const blobKey = `${p}blobs/step-${String(state.step).padStart(10, '0')}-${sha256.slice(0, 8)}.bin`;
  const pointer = TrainStatePointer.parse({
    schemaVersion: 1,
    step: state.step,
    epoch: state.epoch,
    rng: state.rng,
    meta: state.meta,
    savedAt: (opts.clock ?? (() => new Date()))().toISOString(),
    blob: { key: blobKey, sha256, size: bytes.byteLength },
    weights,
    optimizerSlots,
  });

  const prev = await store.get(pointerKey(prefix));
  const prevBody = prev && 'body' in prev ? prev : null;
  await store.put(blobKey, bytes, { contentType: 'application/octet-stream' });
  const { etag } = await store.put(pointerKey(prefix), JSON.stringify(pointer), {
    contentType: 'application/json',
    ...(prevBody ? { ifMatch: prevBody.etag } : { ifNoneMatch: '*' as const }),
  });
  if (prevBody) {
    const old = TrainStatePointer.safeParse(safeJson(prevBody.body));
    if (old.success && old.data.blob.key !== blobKey) await store.delete(old.data.blob.key);
  }
  return { pointer, etag };
}

function safeJson(b: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(b));
  } catch {
    return undefined;
  }
}

/** The latest snapshot under `prefix`, verified by sha256; null if none was ever saved. */
export async function loadTrainState(store: ObjectStore, prefix: string): Promise<(TrainState & { savedAt: string }) | null> {
  // The previous blob is deleted right after the pointer moves; if we read the old pointer just before
  // that, its blob is gone — read the (new) pointer once more.
  for (let attempt = 0; ; attempt++) {
    const key = pointerKey(prefix);
    const got = await store.get(key);
    if (!got || !('body' in got)) return null;
    const raw = safeJson(got.body);
    if (raw === undefined) throw new TrainStateError(key, 'is not valid JSON');
    const parsed = TrainStatePointer.safeParse(raw);
    if (!parsed.success) throw new TrainStateError(key, `is invalid: ${zodMessage(parsed.error)}`);
    const ptr = parsed.data;
    const blob = await store.get(ptr.blob.key);
    if (!blob || !('body' in blob)) {
      if (attempt === 0) continue;
      throw new TrainStateError(ptr.blob.key, `is missing (named by ${key})`);
    }
    const body = blob.body;
    if (body.byteLength !== ptr.blob.size)
      throw new TrainStateError(ptr.blob.key, `is ${body.byteLength} bytes; ${key} says ${ptr.blob.size} (truncated?)`);
    const sha = await sha256Hex(body);
    if (sha !== ptr.blob.sha256) throw new TrainStateError(ptr.blob.key, `is corrupt: sha256 ${sha}, expected ${ptr.blob.sha256}`);
    // One aligned copy; the arrays are views into it.
    const floats = new Float32Array(body.slice().buffer);
    const view = (e: z.infer<typeof TensorEntry>) => {
      if (e.offset + e.length > floats.length) throw new TrainStateError(key, `describes ${e.name} beyond the end of the blob`);
      return floats.subarray(e.offset, e.offset + e.length);
    };
    const weights: Record<string, Float32Array> = {};
    for (const e of ptr.weights) weights[e.name] = view(e);
    return {
      step: ptr.step,
      epoch: ptr.epoch,
      rng: ptr.rng as RngState | Record<string, RngState>,
      meta: ptr.meta,
      weights,
      optimizerSlots: ptr.optimizerSlots.map(view),
      savedAt: ptr.savedAt,
    };
  }
}
