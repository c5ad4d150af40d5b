import { describe, expect, it } from 'vitest';
import { float32ArrayJson, float32Json } from '../shared/util/float32-json.js';

/** float32 values from random bit patterns: every exponent, subnormals included (NaN/∞ skipped). */
function randomFloat32s(n: number, seed = 1): Float32Array {
  const bits = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = ((s >>> 23) & 0xff) === 0xff ? s & 0x807fffff : s; // an all-ones exponent is NaN or ∞
  }
  return new Float32Array(bits.buffer);
}

describe('float32ArrayJson', () => {
  it('reads back as the identical float32, bit for bit, over every exponent', () => {
    const v = randomFloat32s(200_000);
    const back = new Float32Array(JSON.parse(float32ArrayJson(v)) as number[]);
    const a = new Uint32Array(v.buffer);
    const b = new Uint32Array(back.buffer);
    let bad = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(v[i] === 0 && back[i] === 0)) bad++;
    expect(bad).toBe(0);
  });

  it('edge values: extremes, powers of ten, carries, signs', () => {
    const f = Math.fround;
    const edge = [1.401298464324817e-45, 1.1754942106924411e-38, 1.1754943508222875e-38, 3.4028234663852886e38, f(0.1), f(1e-7), f(1e-6), f(9.99999e-7), f(1e21), f(9.999999e20), 1, 10, 100, 1e9, f(0.3), f(123456.789), f(-0.5), 16777216, f(0.999999999)];
    const v = new Float32Array([...edge, ...edge.map((x) => -x)]);
    const text = float32ArrayJson(v);
    expect(Array.from(new Float32Array(JSON.parse(text) as number[]))).toEqual(Array.from(v));
    // Short values print as JavaScript prints them.
    for (const x of [0.5, 1, 10, 100, 0.25, -2, 0.125, 123.5, 4194304, 2 ** -7]) expect(float32Json(x)).toBe(String(x));
    // Exponent form where JavaScript uses it (below 1e-6, from 1e21).
    expect(float32Json(f(1e-7))).toBe('1.00000001e-7');
    expect(float32Json(f(1e21))).toBe('1.00000002e+21');
    expect(float32Json(f(0.000001))).toBe('9.99999997e-7');
    expect(float32Json(f(0.00001))).toBe('0.00000999999975');
    // At most 9 significant digits, where JSON.stringify prints the float64 widening (up to 17).
    expect(float32Json(f(0.1))).toBe('0.100000001');
    expect(JSON.stringify(f(0.1))).toBe('0.10000000149011612');
  });

  it('non-finite as null and -0 as 0, as JSON.stringify does; always valid JSON', () => {
    const v = new Float32Array([NaN, Infinity, -Infinity, -0, 0]);
    expect(float32ArrayJson(v)).toBe(JSON.stringify(Array.from(v)));
    expect(float32ArrayJson(new Float32Array(0))).toBe('[]');
    expect(float32ArrayJson([1, 2])).toBe('[1,2]');
  });
});
