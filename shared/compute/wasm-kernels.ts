/**
 * Convolution gradients for tfjs-backend-wasm, written as forward convolutions (XNNPACK's fast path).
 *
 * wasm has no Conv2DBackpropFilter at all, and its Conv2DBackpropInput is a naive loop (~1.7 GFLOP/s
 * here against ~12.7 for a forward conv). Both are NHWC with x [N,H,W,Ci], w [kh,kw,Ci,Co], dy [N,Ho,Wo,Co]
 * and y[n,i,j,o] = Σ xpad[n, i·s+a, j·s+b, c] · w[a,b,c,o] (xpad = x with `pt` rows / `pl` columns before).
 *
 * - filter gradient dw[a,b,c,o] = Σ_{n,i,j} xpad[n, i·s+a, j·s+b, c] · dy[n,i,j,o]: one conv whose batch is
 *   Ci, input channels N and filter dy (dilated by the stride): x → [Ci,H,W,N], dy → [Ho,Wo,N,Co].
 * - input gradient: split each output row p = s·u + r into its stride phase r. For a phase only the taps
 *   a ≡ r + pt (mod s) contribute, at dy row i = u − (a − r − pt)/s, so every phase is a small stride-1 conv
 *   over dy; all s² phases become the output channels of ONE conv (kernel ⌈k/s⌉-ish, flipped and
 *   in/out-transposed w), and a rank-4 transpose interleaves them back into rows and columns. Stride 1 is the
 *   same code with one phase: the flipped kernel over padded dy.
 * - 1×1 stride-1 kernels with no padding are plain matmuls.
 * Kernels are called directly on the backend (no engine round-trips); temporaries are freed at once.
 */
import * as tf from '@tensorflow/tfjs';

type TensorInfo = tf.TensorInfo;
type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

interface WasmBackendLike extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: 'float32', memoryOffset?: number, values?: Float32Array): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** Runs wasm kernels by name and frees every intermediate except the ones kept. */
class KernelScope {
  private readonly temps: TensorInfo[] = [];
  constructor(readonly backend: WasmBackendLike) {}

  run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: object = {}): TensorInfo {
    const k = tf.getKernel(kernelName, 'wasm');
    if (!k) throw new Error(`wasm kernel ${kernelName} is not registered`);
    const out = k.kernelFunc({ inputs, backend: this.backend, attrs: attrs as tf.NamedAttrMap }) as TensorInfo;
    this.temps.push(out);
    return out;
  }

  make(shape: number[], values: Float32Array): TensorInfo {
    const out = this.backend.makeOutput(shape, 'float32', undefined, values);
    this.temps.push(out);
    return out;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Frees all temporaries except `result`, which the caller hands to the engine. */
  finish(result: TensorInfo): TensorInfo {
    for (const t of this.temps) if (t !== result) this.backend.disposeData(t.dataId);
    return result;
  }
}

function convInfo(xShape: number[], filterShape: number[], strides: number | [number, number], pad: Pad, dimRoundingMode?: 'floor' | 'round' | 'ceil') {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
}

function checkNhwc(dataFormat: string | undefined, op: string): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${op} on wasm supports NHWC only, got dataFormat ${dataFormat}`);
  }
}

/** Crops a 4-D tensor's rows/columns to [0,h) × [0,w) if it is larger. */
function crop(s: KernelScope, t: TensorInfo, h: number, w: number): TensorInfo {
  const [n, th, tw, c] = t.shape as [number, number, number, number];
  if (th === h && tw === w) return t;
  return s.run('Slice', { x: t }, { begin: [0, 0, 0, 0], size: [n, h, w, c] });
}

/** Above this many taps per output (kh·kw·Ci) the one-hot patch conv costs more than it saves. */
const PATCH_TAPS_MAX = Number(globalThis.process?.env?.['VICREG_PATCH_TAPS_MAX'] ?? 64);

/** Identity over (a, b, c) taps: conv with it turns x into its patches. */
function oneHotPatchKernel(taps: number): Float32Array {
  const k = new Float32Array(taps * taps);
  for (let i = 0; i < taps; i++) k[i * taps + i] = 1;
  return k;
}

interface FilterGradAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: string;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

function conv2dBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as FilterGradAttrs;
  checkNhwc(attrs.dataFormat, 'Conv2DBackpropFilter');
  const ci = convInfo(x.shape, attrs.filterShape, attrs.strides, attrs.pad, attrs.dimRoundingMode);
  const s = new KernelScope(args.backend as WasmBackendLike);
  const [kh, kw, cin, cout] = attrs.filterShape;
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo, inHeight: h, inWidth: w, batchSize: n } = ci;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;

  const taps = kh * kw * cin;
  if (taps <= PATCH_TAPS_MAX) {
    // Few taps (1×1 kernels, or the stem's single input channel): gather the patches with a one-hot conv
    // (or use x itself), then dw = patchesᵀ · dy as one matmul. Cheaper than the dilated conv, whose
    // filter (all of dy) XNNPACK repacks on every call.
    let patches = x;
    if (kh === 1 && kw === 1 && pt === 0 && pl === 0) {
      // A 1×1 max-pool with the stride is a fast subsample (wasm's StridedSlice is ~100× slower).
      if (sh > 1 || sw > 1) patches = s.run('MaxPool', { x }, { filterSize: [1, 1], strides: [sh, sw], pad: 'valid' });
    } else {
      patches = s.run(
        'Conv2D',
        { x, filter: s.make([kh, kw, cin, taps], oneHotPatchKernel(taps)) },
        { strides: [sh, sw], pad: [[0, 0], [pt, ci.padInfo.bottom], [pl, ci.padInfo.right], [0, 0]], dataFormat: 'NHWC', dilations: [1, 1] },
      ); // [N, Ho, Wo, kh·kw·Ci]
    }
    const a = s.reshape(patches, [1, n * ho * wo, taps]);
    const b = s.reshape(dy, [1, n * ho * wo, cout]);
    const m = s.run('BatchMatMul', { a, b }, { transposeA: true, transposeB: false });
    return s.finish(s.reshape(m, [kh, kw, cin, cout]));
  }

  // Batch = Ci, channels = N, filter = dy spread by the stride (dilation); output rows = filter taps.
  const xt = s.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, N]
  const dyt = s.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, N, Co]
  const padBottom = Math.max(0, kh - h - pt + (ho - 1) * sh);
  const padRight = Math.max(0, kw - w - pl + (wo - 1) * sw);
  const conv = s.run(
    'Conv2D',
    { x: xt, filter: dyt },
    {
      strides: [1, 1],
      pad: [[0, 0], [pt, padBottom], [pl, padRight], [0, 0]],
      dataFormat: 'NHWC',
      dilations: [sh, sw],
    },
  ); // [Ci, ≥kh, ≥kw, Co]
  const cropped = crop(s, conv, kh, kw);
  const out = s.transpose(cropped, [1, 2, 0, 3]); // [kh, kw, Ci, Co]
  if (out.shape[2] !== cin || out.shape[3] !== cout) throw new Error('Conv2DBackpropFilter: internal shape mismatch');
  return s.finish(out);
}

interface InputGradAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: string;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/** Per spatial axis: which dy offsets each stride phase needs, for the phase-decomposed input gradient. */
interface AxisPlan {
  /** Kernel extent of the phase conv along this axis. */
  d: number;
  /** dy padding before/after so the conv yields `rows` outputs per phase (may yield more; cropped). */
  padBefore: number;
  padAfter: number;
  /** tap[d][r] = index into the original kernel, or -1 if that phase has no tap at that offset. */
  tap: number[][];
}

function planAxis(k: number, stride: number, padStart: number, inSize: number, outSize: number): AxisPlan | undefined {
  let mMin = Infinity;
  let mMax = -Infinity;
  for (let r = 0; r < stride; r++) {
    for (let a = 0; a < k; a++) {
      const q = a - r - padStart;
      if (((q % stride) + stride) % stride !== 0) continue;
      const m = q / stride;
      mMin = Math.min(mMin, m);
      mMax = Math.max(mMax, m);
    }
  }
  if (!Number.isFinite(mMin) || mMax < 0) return undefined;
  const d = mMax - mMin + 1;
  const rows = Math.ceil(inSize / stride);
  const tap: number[][] = [];
  for (let di = 0; di < d; di++) {
    const m = mMax - di;
    tap.push(Array.from({ length: stride }, (_, r) => {
      const a = stride * m + r + padStart;
      return a >= 0 && a < k ? a : -1;
    }));
  }
  return { d, padBefore: mMax, padAfter: Math.max(0, rows - outSize - mMin), tap };
}

/** Phase-conv kernel K[dh, dw, o, (r, t, c)] = w[a, b, c, o] from the plans (zeros where a phase has no tap). */
function phaseKernel(wv: Float32Array, kw: number, cin: number, cout: number, ph: AxisPlan, pw: AxisPlan, sh: number, sw: number): Float32Array {
  const phases = sh * sw * cin;
  const out = new Float32Array(ph.d * pw.d * cout * phases);
  for (let dh = 0; dh < ph.d; dh++) {
    for (let dw = 0; dw < pw.d; dw++) {
      const base = (dh * pw.d + dw) * cout * phases;
      for (let r = 0; r < sh; r++) {
        const a = ph.tap[dh]![r]!;
        if (a < 0) continue;
        for (let t = 0; t < sw; t++) {
          const b = pw.tap[dw]![t]!;
          if (b < 0) continue;
          const src = (a * kw + b) * cin * cout;
          const phaseOff = (r * sw + t) * cin;
          for (let c = 0; c < cin; c++) {
            const srcRow = src + c * cout;
            for (let o = 0; o < cout; o++) out[base + o * phases + phaseOff + c] = wv[srcRow + o]!;
          }
        }
      }
    }
  }
  return out;
}

let originalBackpropInput: tf.KernelConfig | undefined;
let originalSetUp = false;

function conv2dBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): TensorInfo {
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as InputGradAttrs;
  checkNhwc(attrs.dataFormat, 'Conv2DBackpropInput');
  const ci = convInfo(attrs.inputShape, filter.shape, attrs.strides, attrs.pad, attrs.dimRoundingMode);
  const backend = args.backend as WasmBackendLike;
  const s = new KernelScope(backend);
  const [kh, kw, cin, cout] = filter.shape as [number, number, number, number];
  const { strideHeight: sh, strideWidth: sw, outHeight: ho, outWidth: wo, inHeight: h, inWidth: w, batchSize: n } = ci;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;

  if (kh === 1 && kw === 1 && pt === 0 && pl === 0) {
    // dy · wᵀ, then (strided) zeros interleaved by one rank-6 pad: [n,ho,1,wo,1,c] → [n,ho,sh,wo,sw,c]
    // (4 ms here, against 18 ms for wasm's AvgPoolGrad and 150 ms for a strided scatter via StridedSlice).
    const a = s.reshape(dy, [1, n * ho * wo, cout]);
    const b = s.reshape(filter, [1, cin, cout]);
    const m = s.run('BatchMatMul', { a, b }, { transposeA: false, transposeB: true });
    if (sh === 1 && sw === 1) return s.finish(s.reshape(m, [n, h, w, cin]));
    const spread = s.run(
      'PadV2',
      { x: s.reshape(m, [n, ho, 1, wo, 1, cin]) },
      { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 },
    );
    return s.finish(crop(s, s.reshape(spread, [n, ho * sh, wo * sw, cin]), h, w));
  }

  const ph = planAxis(kh, sh, pt, h, ho);
  const pw = planAxis(kw, sw, pl, w, wo);
  if (!ph || !pw) {
    // Unusual padding (more than the kernel): wasm's own kernel is slow but correct.
    if (!originalSetUp) originalBackpropInput!.setupFunc?.(backend);
    originalSetUp = true;
    return originalBackpropInput!.kernelFunc(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  }
  const wv = backend.readSync(filter.dataId) as Float32Array;
  const k = s.make([ph.d, pw.d, cout, sh * sw * cin], phaseKernel(wv, kw, cin, cout, ph, pw, sh, sw));
  const conv = s.run(
    'Conv2D',
    { x: dy, filter: k },
    {
      strides: [1, 1],
      pad: [[0, 0], [ph.padBefore, ph.padAfter], [pw.padBefore, pw.padAfter], [0, 0]],
      dataFormat: 'NHWC',
      dilations: [1, 1],
    },
  ); // [N, U, V, sh·sw·Ci]
  let full = conv;
  if (sh * sw > 1) {
    const [, u, v] = conv.shape as [number, number, number, number];
    // (n,u,v,r,t,c) → (n,u,r,v,t,c): rows u·sh + r, columns v·sw + t.
    const r4 = s.reshape(conv, [n * u, v, sh, sw * cin]);
    const tr = s.transpose(r4, [0, 2, 1, 3]);
    full = s.reshape(tr, [n, u * sh, v * sw, cin]);
  }
  return s.finish(crop(s, full, h, w));
}

/**
 * wasm's BatchMatMul with transposeA/transposeB runs 10–25× slower than without (256×512 by 512×512:
 * 90–190 ms against 8 ms here); an explicit transpose costs ~0.5 ms. Every matmul gradient transposes.
 */
function untransposedMatMul(original: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    if (!attrs.transposeA && !attrs.transposeB) return original.kernelFunc(args);
    const s = new KernelScope(args.backend as WasmBackendLike);
    const swapLast = (t: TensorInfo) => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
      return s.transpose(t, perm);
    };
    const inputs = { ...args.inputs };
    if (attrs.transposeA) inputs['a'] = swapLast(inputs['a']!);
    if (attrs.transposeB) inputs['b'] = swapLast(inputs['b']!);
    const out = original.kernelFunc({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } }) as TensorInfo;
    return s.finish(out);
  };
}

let registered = false;

/**
 * Zero-copy Identity. tfjs saves every tensor a gradient needs through Identity; wasm's copies the buffer,
 * the cpu backend's shares it (tensor data is immutable, so sharing is safe).
 */
function identity(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend }): TensorInfo {
  const x = args.inputs['x']!;
  args.backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Registers the conv gradients and zero-copy Identity above for the wasm backend (idempotent). */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel('Identity', 'wasm')) tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: identity as tf.KernelFunc });
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const original = tf.getKernel(name, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...original, kernelFunc: untransposedMatMul(original) });
  }
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilter as tf.KernelFunc });
  }
  const original = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (original) {
    originalBackpropInput = original;
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  }
  tf.registerKernel({ kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2dBackpropInput as tf.KernelFunc });
}
