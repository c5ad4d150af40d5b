/**
 * JSON text for float32 vectors at float32 precision. JSON.stringify prints each value's float64 widening
 * with up to 17 significant digits (0.10000000149011612); 9 significant digits always read back as the
 * same float32 (IEEE 754 binary32 round-trip), so this prints at most 9, trailing zeros dropped. For an
 * embedding of 128 values: ~1.6 kB instead of ~2.6 kB, and ~30 µs of the event loop instead of ~60 µs
 * here. test/float32-json.test.ts checks the round trip bit for bit over every exponent.
 */

/** `[v0,v1,…]` of float32 values (a Float32Array's): non-finite values as null (as JSON.stringify does), -0 as 0. */
export function float32ArrayJson(v: ArrayLike<number>): string {
  // Longest value: "-1.23456789e-45" (15 bytes) plus a comma. The scratch buffer is reused up to 64 kB.
  const need = v.length * 16 + 2;
  if (scratch.length < need && need <= 65_536) scratch = new Uint8Array(need);
  const buf = scratch.length >= need ? scratch : new Uint8Array(need);
  let p = 0;
  buf[p++] = 0x5b; // [
  for (let i = 0; i < v.length; i++) {
    if (i > 0) buf[p++] = 0x2c; // ,
    p = writeFloat32(buf, p, v[i]!);
  }
  buf[p++] = 0x5d; // ]
  return ascii.decode(buf.subarray(0, p));
}

/** One value as JSON: at most 9 significant digits; exponent form below 1e-6 and from 1e21, as JavaScript prints. */
export function float32Json(x: number): string {
  const buf = new Uint8Array(16);
  return ascii.decode(buf.subarray(0, writeFloat32(buf, 0, x)));
}

const ascii = new TextDecoder();
let scratch = new Uint8Array(4096);
const digits = new Uint8Array(9);
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);
/** 10^0 … 10^22 as literals: each is exact in float64 (Math.pow need not be). */
const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
const ZERO = 0x30;

/** Writes x's JSON at buf[p…]; returns the position after it. */
function writeFloat32(buf: Uint8Array, p: number, x: number): number {
  if (!Number.isFinite(x)) {
    buf.set(NULL, p);
    return p + 4;
  }
  if (x === 0) {
    buf[p] = ZERO;
    return p + 1;
  }
  if (x < 0) {
    buf[p++] = 0x2d; // -
    x = -x;
  }
  // Decimal exponent from the binary one (subnormals: log10), corrected below when one off.
  f32[0] = x;
  const binaryExponent = (f32Bits[0]! >>> 23) & 0xff;
  let e = binaryExponent === 0 ? Math.floor(Math.log10(x)) : Math.floor((binaryExponent - 127) * 0.3010299956639812);
  let m = scaled(x, 8 - e);
  if (m >= 999_999_999.5) m = scaled(x, 8 - ++e);
  else if (m < 99_999_999.5) m = scaled(x, 8 - --e);
  // Nine significant digits, most significant first, trailing zeros dropped.
  let mantissa = Math.round(m) | 0;
  for (let i = 8; i >= 0; i--) {
    const q = (mantissa * 0.1) | 0;
    digits[i] = ZERO + mantissa - q * 10;
    mantissa = q;
  }
  let n = 9;
  while (n > 1 && digits[n - 1] === ZERO) n--;
  if (e >= 21 || e < -6) {
    buf[p++] = digits[0]!;
    if (n > 1) {
      buf[p++] = 0x2e; // .
      for (let i = 1; i < n; i++) buf[p++] = digits[i]!;
    }
    buf[p++] = 0x65; // e
    buf[p++] = e > 0 ? 0x2b : 0x2d;
    const ae = e < 0 ? -e : e;
    if (ae >= 10) buf[p++] = ZERO + ((ae * 0.1) | 0);
    buf[p++] = ZERO + (ae % 10);
  } else if (e < 0) {
    buf[p++] = ZERO;
    buf[p++] = 0x2e;
    for (let i = 0; i < -e - 1; i++) buf[p++] = ZERO;
    for (let i = 0; i < n; i++) buf[p++] = digits[i]!;
  } else {
    for (let i = 0; i <= e; i++) buf[p++] = i < n ? digits[i]! : ZERO;
    if (n > e + 1) {
      buf[p++] = 0x2e;
      for (let i = e + 1; i < n; i++) buf[p++] = digits[i]!;
    }
  }
  return p;
}

const NULL = new Uint8Array([0x6e, 0x75, 0x6c, 0x6c]);

/** a × 10^k with at most three roundings (float32 values need -30 ≤ k ≤ 53). */
function scaled(a: number, k: number): number {
  if (k >= 0) return k <= 22 ? a * POW10[k]! : a * 1e22 * POW10[Math.min(22, k - 22)]! * (k > 44 ? POW10[k - 44]! : 1);
  return -k <= 22 ? a / POW10[-k]! : a / 1e22 / POW10[Math.min(22, -k - 22)]! / (-k > 44 ? POW10[-k - 44]! : 1);
}
