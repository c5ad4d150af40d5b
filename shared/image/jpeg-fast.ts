/**
 * A fast path for photos a few times larger than the model's input: a baseline JPEG that sharp would
 * decode at 1/8 scale (its shrink-on-load) is decoded at 1/8 scale here, with libjpeg's own arithmetic —
 * the DC term of each 8×8 block for full-resolution components, the 2×2 reduced IDCT for 2×2-subsampled
 * chroma, replication for other subsampling, the integer YCbCr→RGB tables — and then resized, oriented
 * and converted as sharp does (shared/image/pixels.ts): the same pixels, bit for bit. sharp sets up a
 * libvips pipeline per image, parses the file twice and runs the decode and the resize as operations on
 * worker threads, a fixed cost that dominates a photo's decode at 1/8 scale; this TypeScript has no such
 * cost but is slower per byte, and runs on the event loop, so it only takes files within a work budget
 * (see WORK_BUDGET). Anything else — progressive, arithmetic-coded, 12-bit, CMYK or Adobe-marked, an
 * embedded ICC profile, a smaller shrink, over the pixel limit or the budget, or any irregularity in the
 * file that libjpeg would warn about — returns undefined, and the caller uses the full decoder, which also produces the error for bad files.
 * The libjpeg facts it follows come from libjpeg-turbo/mozjpeg's documentation and source (jdmaster,
 * jdhuff, jidctred, jdsample, jdcolor); no code is taken from them.
 */
import type { DecodeTarget, DecodedImage } from './decoder.js';
import { jpegOrientation } from './headers.js';
import { jpegShrinkOnLoad, loadedToModelInput, sharpShrinks, type Plane } from './pixels.js';

export interface JpegFastPathOptions {
  /** As the full decoder's limit: larger images go to it (it refuses them). */
  maxPixels: number;
  /** Override WORK_BUDGET (tests use Infinity to compare any size with sharp). */
  workBudget?: number;
}

/** Zigzag index → natural (row-major) index, padded to 80 with 63 as libjpeg's table (corrupt runs land there). */
const NATURAL = Int32Array.from([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
  54, 47, 55, 62, 63, ...new Array<number>(16).fill(63),
]);

const LOOKAHEAD = 9;

/** A Huffman table as libjpeg derives it: 9-bit lookahead (length << 8 | symbol; 0 = longer) and maxcode per length. */
interface Huffman {
  look: Uint16Array;
  /** As `look`, with the value bits that follow the code added to its length (for skipping ACs). */
  skip?: Uint16Array;
  /** For skipping ACs several at a time: see multiSkip. */
  multi?: Uint16Array;
  maxcode: Int32Array;
  /** Symbol index offset per length (valptr − mincode). */
  valoff: Int32Array;
  vals: Uint8Array;
}

function buildHuffman(counts: Uint8Array, vals: Uint8Array): Huffman | undefined {
  const maxcode = new Int32Array(18).fill(-1);
  const valoff = new Int32Array(18);
  const look = new Uint16Array(1 << LOOKAHEAD);
  let code = 0;
  let p = 0;
  let last = 0;
  for (let l = 1; l <= 16; l++) if (counts[l - 1]) last = l;
  for (let l = 1; l <= 16; l++) {
    const n = counts[l - 1]!;
    if (n) {
      valoff[l] = p - code;
      for (let i = 0; i < n; i++, p++, code++) {
        if (l <= LOOKAHEAD) {
          const shift = LOOKAHEAD - l;
          const base = code << shift;
          for (let j = 0; j < 1 << shift; j++) look[base + j] = (l << 8) | vals[p]!;
        }
      }
      maxcode[l] = code - 1;
    }
    // libjpeg rejects a table whose codes do not fit their length (or use the all-ones code).
    if (l <= last && code >= 1 << l) return undefined;
    code <<= 1;
  }
  return { look, maxcode, valoff, vals };
}

/** The skip tables of an AC table whose values are never needed (built once per table, only for those). */
function addSkipTables(t: Huffman): void {
  t.skip ??= t.look.map((e) => (e ? e + ((e & 15) << 8) : 0));
  t.multi ??= multiSkip(t.look);
}

const MULTI = 12;

/**
 * For each MULTI-bit window, the AC codes (with their value bits) that lie wholly inside it: bits used
 * (low 4 bits) and coefficients passed (above them; an end of block counts one, and sets bit 12). 0 when
 * not even the first fits. A luma block at 1/8 scale needs none of its ACs, so most of a photo's bits
 * are skipped this way, about two codes per lookup.
 */
function multiSkip(look: Uint16Array): Uint16Array {
  const multi = new Uint16Array(1 << MULTI);
  for (let w = 0; w < 1 << MULTI; w++) {
    let used = 0;
    let passed = 0;
    let end = 0;
    while (!end) {
      const e = look[((w << used) >>> (MULTI - LOOKAHEAD)) & 511]!;
      const len = e >> 8;
      const sym = e & 255;
      const total = len + (sym & 15);
      if (!e || used + total > MULTI) break;
      used += total;
      if (sym & 15) passed += (sym >> 4) + 1;
      else if (sym === 0xf0) passed += 16;
      else (passed += 1), (end = 1);
    }
    if (used) multi[w] = used | (passed << 4) | (end << 12);
  }
  return multi;
}

/** libjpeg's YCbCr→RGB tables (16-bit fixed point, rounded as it rounds). */
const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
/** libjpeg's post-IDCT range limit: the low 10 bits as a signed value, +128, clamped. */
const idctLimit = (v: number) => {
  const i = v & 1023;
  return i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
};

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Output samples per block edge at 1/8 scale: 1, or 2 for chroma that libjpeg scales up in its IDCT. */
  ssize: number;
  dc?: Huffman;
  ac?: Huffman;
  q?: Int32Array;
  /** Samples, `stride` per row, at the component's own resolution after the scaled IDCT. */
  plane?: Uint8Array;
  stride: number;
  /** Replication factors up to the output grid (libjpeg's box upsampling at this scale). */
  hx: number;
  vx: number;
}

/** The JPEG's frame and tables, once the markers up to the (single) scan have been read. */
interface Parsed {
  width: number;
  height: number;
  comps: Component[];
  /** Components in scan order. */
  scan: Component[];
  restart: number;
  /** Offset of the entropy-coded data. */
  data: number;
}

const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const startsWith = (b: Uint8Array, o: number, end: number, s: string) =>
  end - o >= s.length && Array.from(s).every((c, i) => b[o + i] === c.charCodeAt(0));

/** Markers and tables up to the scan; undefined for anything outside the fast path's scope. */
function parse(b: Uint8Array): Parsed | undefined {
  const n = b.length;
  if (n < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  const qt: (Int32Array | undefined)[] = [];
  const dcT: (Huffman | undefined)[] = [];
  const acT: (Huffman | undefined)[] = [];
  const dcMaxSym: number[] = [];
  let restart = 0;
  let frame: { width: number; height: number; comps: Component[] } | undefined;
  let jfif = false;
  let pos = 2;
  for (;;) {
    // A marker must follow at once: libjpeg warns about bytes between segments.
    if (pos >= n || b[pos] !== 0xff) return undefined;
    while (pos < n && b[pos] === 0xff) pos++;
    if (pos + 2 >= n) return undefined;
    const m = b[pos++]!;
    if (m === 0xd8 || m === 0xd9 || m === 0x01 || (m >= 0xd0 && m <= 0xd7) || m === 0) return undefined;
    const len = be16(b, pos);
    const s = pos + 2;
    const e = pos + len;
    if (len < 2 || e > n) return undefined;
    pos = e;
    if (m === 0xc0 || m === 0xc1) {
      // Baseline or extended sequential, Huffman-coded.
      if (frame || len < 8 || b[s] !== 8) return undefined;
      const height = be16(b, s + 1);
      const width = be16(b, s + 3);
      const nc = b[s + 5]!;
      // libjpeg's JPEG_MAX_DIMENSION is 65500.
      if (!width || !height || width > 65500 || height > 65500 || (nc !== 1 && nc !== 3) || len !== 8 + 3 * nc) return undefined;
      const comps: Component[] = [];
      for (let i = 0; i < nc; i++) {
        const o = s + 6 + 3 * i;
        const h = b[o + 1]! >> 4;
        const v = b[o + 1]! & 15;
        if (h < 1 || h > 4 || v < 1 || v > 4 || b[o + 2]! > 3 || comps.some((c) => c.id === b[o])) return undefined;
        comps.push({ id: b[o]!, h, v, tq: b[o + 2]!, ssize: 1, stride: 0, hx: 1, vx: 1 });
      }
      frame = { width, height, comps };
    } else if (m === 0xc4) {
      let o = s;
      while (o < e) {
        const tc = b[o]! >> 4;
        const th = b[o]! & 15;
        if (tc > 1 || th > 3 || o + 17 > e) return undefined;
        const counts = b.subarray(o + 1, o + 17);
        let total = 0;
        for (let i = 0; i < 16; i++) total += counts[i]!;
        if (total > 256 || o + 17 + total > e) return undefined;
        const vals = b.slice(o + 17, o + 17 + total);
        const t = buildHuffman(counts, vals);
        if (!t) return undefined;
        if (tc === 0) {
          dcT[th] = t;
          dcMaxSym[th] = Math.max(0, ...vals);
        } else acT[th] = t;
        o += 17 + total;
      }
    } else if (m === 0xdb) {
      let o = s;
      while (o < e) {
        const pq = b[o]! >> 4;
        const tq = b[o]! & 15;
        if (pq > 1 || tq > 3 || o + 1 + 64 * (pq + 1) > e) return undefined;
        const t = new Int32Array(64);
        // Stored as libjpeg's SIMD builds store them: 16-bit signed.
        for (let i = 0; i < 64; i++) t[NATURAL[i]!] = pq ? (be16(b, o + 1 + 2 * i) << 16) >> 16 : b[o + 1 + i]!;
        qt[tq] = t;
        o += 1 + 64 * (pq + 1);
      }
    } else if (m === 0xdd) {
      if (len !== 4) return undefined;
      restart = be16(b, s);
    } else if (m === 0xda) {
      if (!frame) return undefined;
      const ns = b[s]!;
      if (ns !== frame.comps.length || len !== 6 + 2 * ns) return undefined;
      const scan: Component[] = [];
      for (let i = 0; i < ns; i++) {
        const c = frame.comps.find((x) => x.id === b[s + 1 + 2 * i]);
        const td = b[s + 2 + 2 * i]! >> 4;
        const ta = b[s + 2 + 2 * i]! & 15;
        if (!c || scan.includes(c) || td > 3 || ta > 3) return undefined;
        c.dc = dcT[td];
        c.ac = acT[ta];
        c.q = qt[c.tq];
        // libjpeg refuses DC tables with categories over 15.
        if (!c.dc || !c.ac || !c.q || dcMaxSym[td]! > 15) return undefined;
        scan.push(c);
      }
      const o = s + 1 + 2 * ns;
      if (b[o] !== 0 || b[o + 1] !== 63 || b[o + 2] !== 0) return undefined;
      if (frame.comps.length === 3 && !jfif) {
        // libjpeg's colour-space guess without JFIF: YCbCr unless the IDs spell R, G, B.
        const [a, g, c] = frame.comps.map((x) => x.id);
        if (a === 82 && g === 71 && c === 66) return undefined;
      }
      return { ...frame, scan, restart, data: e };
    } else if (m >= 0xe0 && m <= 0xef) {
      if (m === 0xe0 && startsWith(b, s, e, 'JFIF\0') && len >= 16) {
        if (b[s + 5] !== 1) return undefined; // libjpeg warns about other major versions
        jfif = true;
      }
      if (m === 0xe2 && startsWith(b, s, e, 'ICC_PROFILE')) return undefined; // sharp converts with it
      if (m === 0xee && startsWith(b, s, e, 'Adobe')) return undefined; // colour transform flags
    } else if (m !== 0xfe) {
      // SOF2/3/5–15 (progressive, lossless, hierarchical, arithmetic), DNL, DHP, EXP, JPGn, …
      return undefined;
    }
  }
}

/**
 * The scan's entropy-coded bytes with the byte stuffing removed, split at its restart markers: `ends[j]`
 * is the bit offset where interval j's data stops. Undefined unless the markers are RST0, RST1, … in turn
 * and the scan is followed by EOI (anything else is for libjpeg to judge). Zero bytes follow the data,
 * as libjpeg feeds zeros at a marker; reading any of them is its "premature end" warning.
 */
function unstuff(b: Uint8Array, start: number): { data: Uint8Array; ends: number[] } | undefined {
  const n = b.length;
  const data = new Uint8Array(n - start + 8);
  const ends: number[] = [];
  let o = 0;
  for (let p = start; p < n; ) {
    const c = b[p]!;
    if (c !== 0xff) {
      data[o++] = c;
      p++;
      continue;
    }
    let q = p + 1;
    while (q < n && b[q] === 0xff) q++;
    if (q >= n) return undefined;
    const m = b[q]!;
    if (m === 0) data[o++] = 0xff;
    else if (m === 0xd0 + (ends.length & 7)) ends.push(o * 8);
    else if (m === 0xd9) {
      ends.push(o * 8);
      return { data, ends };
    } else return undefined;
    p = q + 1;
  }
  return undefined;
}

/**
 * Decode the scan at 1/8 scale into each component's plane; false on anything libjpeg would warn about
 * (running into a marker or the end, a bad code, bytes left before a marker, restart markers that do not
 * match the interval). One function with the bit buffer in locals: this loop is the fast path's cost.
 */
function decodeScan(b: Uint8Array, f: Parsed): boolean {
  const { scan, restart } = f;
  const stream = unstuff(b, f.data);
  if (!stream) return false;
  const { data: d } = stream;
  const ends = Int32Array.from(stream.ends);
  const interleaved = scan.length > 1;
  const maxH = Math.max(...f.comps.map((c) => c.h));
  const maxV = Math.max(...f.comps.map((c) => c.v));
  const mcusX = interleaved ? Math.ceil(f.width / (8 * maxH)) : Math.ceil(Math.ceil((f.width * scan[0]!.h) / maxH) / 8);
  const mcusY = interleaved ? Math.ceil(f.height / (8 * maxV)) : Math.ceil(Math.ceil((f.height * scan[0]!.v) / maxV) / 8);
  const total = mcusX * mcusY;
  if (ends.length !== (restart ? Math.ceil(total / restart) : 1)) return false;
  for (const c of scan) {
    if (c.ssize === 1) addSkipTables(c.ac!);
    const bw = interleaved ? mcusX * c.h : mcusX;
    const bh = interleaved ? mcusY * c.v : mcusY;
    c.stride = bw * c.ssize;
    c.plane = new Uint8Array(c.stride * bh * c.ssize);
  }
  const st: ScanState = {
    d,
    ends,
    restart,
    mcusX,
    interleaved,
    scan,
    pred: new Int32Array(scan.length),
    coef: new Int32Array(64),
    written: new Int32Array(64),
    ws: new Int32Array(16),
    bits: new Int32Array(4),
  };
  // Row by row: each call is short, so V8 optimises the row decoder whole (a single loop over the
  // image would run as on-stack-replaced code that deoptimises at its end on every image).
  for (let my = 0; my < mcusY; my++) if (!decodeRow(st, my)) return false;
  return usedUpTo(st.bits[2]!, st.bits[1]!, ends[ends.length - 1]!);
}

/** What the row decoder keeps between rows. */
interface ScanState {
  d: Uint8Array;
  ends: Int32Array;
  restart: number;
  mcusX: number;
  interleaved: boolean;
  scan: Component[];
  pred: Int32Array;
  coef: Int32Array;
  written: Int32Array;
  ws: Int32Array;
  /** The bit buffer between rows: acc, nb, pos, interval. */
  bits: Int32Array;
}

/** One row of MCUs; false on anything libjpeg would warn about. */
function decodeRow(st: ScanState, my: number): boolean {
  const { d, ends, restart, mcusX, interleaved, scan, pred, coef, written, ws, bits } = st;
  // The bit buffer: `nb` unread bits in the low end of `acc`, next byte at d[pos]. Reading past the data
  // gives zeros (as libjpeg's at a marker); the interval checks catch any such bits being used.
  let acc = bits[0]!;
  let nb = bits[1]!;
  let pos = bits[2]!;
  let interval = bits[3]!;
  for (let mx = 0; mx < mcusX; mx++) {
    const mcu = my * mcusX + mx;
    if (restart && mcu > 0 && mcu % restart === 0) {
      const end = ends[interval++]!;
      if (!usedUpTo(pos, nb, end)) return false;
      pos = end >>> 3;
      acc = nb = 0;
      pred.fill(0);
    }
    for (let ci = 0; ci < scan.length; ci++) {
      const c = scan[ci]!;
      const bh = interleaved ? c.h : 1;
      const bv = interleaved ? c.v : 1;
      const dcT = c.dc!;
      const acT = c.ac!;
      const q = c.q!;
      const plane = c.plane!;
      for (let by = 0; by < bv; by++) {
        for (let bx = 0; bx < bh; bx++) {
          while (nb <= 24) {
            acc = (acc << 8) | (d[pos++]! | 0);
            nb += 8;
          }
          let e = dcT.look[(acc >>> (nb - LOOKAHEAD)) & 511]!;
          if (!e && !(e = slowDecode(dcT, acc, nb))) return false;
          nb -= e >> 8;
          let s = e & 255;
          let diff = 0;
          if (s) {
            if (nb < s) {
              while (nb <= 24) {
                acc = (acc << 8) | (d[pos++]! | 0);
                nb += 8;
              }
            }
            const r = (acc >>> (nb - s)) & ((1 << s) - 1);
            nb -= s;
            diff = r < 1 << (s - 1) ? r - (1 << s) + 1 : r;
          }
          const dc = (pred[ci] = (pred[ci]! + diff) | 0);
          const col = mx * bh + bx;
          const row = my * bv + by;
          if (c.ssize === 1) {
            // 1×1 IDCT: the block's mean, DC × quant / 8 rounded; the ACs are decoded only to skip them,
            // each code and its value bits in one step.
            const skip = acT.skip!;
            const multi = acT.multi!;
            for (let k = 1; k < 64; k++) {
              while (nb <= 24) {
                acc = (acc << 8) | (d[pos++]! | 0);
                nb += 8;
              }
              const m = multi[(acc >>> (nb - MULTI)) & ((1 << MULTI) - 1)]!;
              // Several codes at once while they stay inside the block (else one at a time, as libjpeg).
              if (m && k + ((m >> 4) & 255) <= 64) {
                nb -= m & 15;
                if (m & 4096) break;
                k += ((m >> 4) & 255) - 1;
                continue;
              }
              e = skip[(acc >>> (nb - LOOKAHEAD)) & 511]!;
              if (!e) {
                if (!(e = slowDecode(acT, acc, nb))) return false;
                e += (e & 15) << 8; // add the value bits to the code length
              }
              nb -= e >> 8;
              const sym = e & 255;
              if (sym & 15) {
                k += sym >> 4;
                if (nb < 0) {
                  // A long code with many value bits ran past the buffer: take the rest now.
                  while (nb <= 0) {
                    acc = (acc << 8) | (d[pos++]! | 0);
                    nb += 8;
                  }
                }
              } else if (sym !== 0xf0) break;
              else k += 15;
            }
            const v = Math.imul((dc << 16) >> 16, q[0]!);
            plane[row * c.stride + col] = idctLimit(Math.floor((v + 4) / 8));
          } else {
            coef[0] = (dc << 16) >> 16;
            let nz = 0;
            const look = acT.look;
            for (let k = 1; k < 64; k++) {
              while (nb <= 24) {
                acc = (acc << 8) | (d[pos++]! | 0);
                nb += 8;
              }
              e = look[(acc >>> (nb - LOOKAHEAD)) & 511]!;
              if (!e && !(e = slowDecode(acT, acc, nb))) return false;
              nb -= e >> 8;
              const sym = e & 255;
              s = sym & 15;
              if (s) {
                k += sym >> 4;
                if (nb < s) {
                  while (nb <= 24) {
                    acc = (acc << 8) | (d[pos++]! | 0);
                    nb += 8;
                  }
                }
                const r = (acc >>> (nb - s)) & ((1 << s) - 1);
                nb -= s;
                const at = NATURAL[k]!;
                coef[at] = r < 1 << (s - 1) ? r - (1 << s) + 1 : r;
                written[nz++] = at;
              } else if (sym !== 0xf0) break;
              else k += 15;
            }
            const at = row * 2 * c.stride + col * 2;
            const z0 = coef[0]! * q[0]!;
            if (nz === 0 && z0 >= -4088 && z0 <= 4088) {
              // DC only (most chroma blocks): the 2×2 IDCT's four samples are all (4·DC·q + 16) >> 5.
              plane[at] = plane[at + 1] = plane[at + c.stride] = plane[at + c.stride + 1] = idctLimit((4 * z0 + 16) >> 5);
            } else if (!idct2x2(coef, q, ws, plane, at, c.stride)) return false;
            // Clear what this block set (cheaper than clearing all 64).
            while (nz > 0) coef[written[--nz]!] = 0;
          }
        }
      }
    }
  }
  bits[0] = acc;
  bits[1] = nb;
  bits[2] = pos;
  bits[3] = interval;
  return true;
}


/**
 * Whether the bits read so far (the buffer's next byte at `pos`, `nb` bits unread) end in the last byte
 * before `end` (the interval's data used up to its padding bits; the next interval starts byte-aligned).
 */
function usedUpTo(pos: number, nb: number, end: number): boolean {
  const used = pos * 8 - nb;
  return used <= end && end - used < 8;
}

/** A code longer than the lookahead, from the top of the `nb` (≥ 25) buffered bits: length << 8 | symbol, or 0. */
function slowDecode(t: Huffman, acc: number, nb: number): number {
  for (let l = LOOKAHEAD + 1; l <= 16; l++) {
    const code = (acc >>> (nb - l)) & ((1 << l) - 1);
    if (code <= t.maxcode[l]!) return (l << 8) | t.vals[t.valoff[l]! + code]!;
  }
  return 0;
}

/**
 * libjpeg's jpeg_idct_2x2 (jidctred.c): columns and rows 0, 1, 3, 5, 7 of the block → 2×2 samples. Its
 * SIMD versions (which sharp's build uses) compute in 16 bits and saturate where the C code wraps; the two
 * agree while every value stays in range, which any real encoder's output does. Returns false outside
 * that range, so such a block goes to libjpeg itself.
 */
function idct2x2(coef: Int32Array, q: Int32Array, ws: Int32Array, out: Uint8Array, o: number, stride: number): boolean {
  // Pass 1: columns 0, 1, 3, 5, 7 → workspace rows 0 and 1 (PASS1_BITS = 2, CONST_BITS = 13).
  for (let c = 0; c < 8; c++) {
    if (c === 2 || c === 4 || c === 6) continue;
    const z0 = coef[c]! * q[c]!;
    const z1 = coef[8 + c]! * q[8 + c]!;
    const z3 = coef[24 + c]! * q[24 + c]!;
    const z5 = coef[40 + c]! * q[40 + c]!;
    const z7 = coef[56 + c]! * q[56 + c]!;
    if (!(inI16(z0) && inI16(z1) && inI16(z3) && inI16(z5) && inI16(z7))) return false;
    const tmp0 = z7 * -5906 + z5 * 6967 + z3 * -10426 + z1 * 29692;
    ws[c] = Math.floor((z0 * 32768 + tmp0 + 4096) / 8192);
    ws[8 + c] = Math.floor((z0 * 32768 - tmp0 + 4096) / 8192);
    // Pass 2 takes the odd columns as 16-bit values and column 0 shifted left by 15 in 32 bits.
    if (c === 0 ? !(Math.abs(ws[c]!) < 65536 && Math.abs(ws[8 + c]!) < 65536) : !(inI16(ws[c]!) && inI16(ws[8 + c]!))) return false;
  }
  // Pass 2: the two workspace rows → two output rows, range-limited (values within ±511 clamp alike).
  for (let r = 0; r < 2; r++) {
    const w = r * 8;
    const tmp0 = ws[w + 7]! * -5906 + ws[w + 5]! * 6967 + ws[w + 3]! * -10426 + ws[w + 1]! * 29692;
    const a = Math.floor((ws[w]! * 32768 + tmp0 + 524288) / 1048576);
    const b = Math.floor((ws[w]! * 32768 - tmp0 + 524288) / 1048576);
    if (a < -512 || a > 511 || b < -512 || b > 511) return false;
    const d = o + r * stride;
    out[d] = idctLimit(a);
    out[d + 1] = idctLimit(b);
  }
  return true;
}
const inI16 = (v: number) => v >= -32768 && v <= 32767;

/**
 * The JPEG at 1/8 scale as libjpeg gives it to libvips (scale_denom 8), cropped to floor(size / 8) as
 * libvips crops it; undefined outside the fast path's scope. `accept` sees the full size first.
 */
export function decodeJpegEighth(b: Uint8Array, accept: (width: number, height: number) => boolean = () => true): Plane | undefined {
  const f = parse(b);
  if (!f || !accept(f.width, f.height)) return undefined;
  const { comps } = f;
  const maxH = Math.max(...comps.map((c) => c.h));
  const maxV = Math.max(...comps.map((c) => c.v));
  if (comps.length > 1 && comps.reduce((s, c) => s + c.h * c.v, 0) > 10) return undefined; // libjpeg's MCU limit
  for (const c of comps) {
    // jpeg_calc_output_dimensions: chroma is scaled up in its IDCT where the sampling ratios allow.
    let ssize = 1;
    while (ssize < 8 && maxH % (c.h * ssize * 2) === 0 && maxV % (c.v * ssize * 2) === 0) ssize *= 2;
    if (ssize > 2 || maxH % (c.h * ssize) !== 0 || maxV % (c.v * ssize) !== 0) return undefined;
    c.ssize = ssize;
    c.hx = maxH / (c.h * ssize);
    c.vx = maxV / (c.v * ssize);
  }
  if (!decodeScan(b, f)) return undefined;
  const width = Math.floor(f.width / 8);
  const height = Math.floor(f.height / 8);
  if (!width || !height) return undefined;
  if (comps.length === 1) {
    const c = comps[0]!;
    const data = new Uint8Array(width * height);
    for (let y = 0; y < height; y++) data.set(c.plane!.subarray(y * c.stride, y * c.stride + width), y * width);
    return { width, height, channels: 1, data };
  }
  const [Y, Cb, Cr] = comps as [Component, Component, Component];
  const data = new Uint8Array(width * height * 3);
  // Column of each component's sample for each output column (box upsampling = replication).
  const cols = (c: Component) => Int32Array.from({ length: width }, (_, x) => Math.floor(x / c.hx));
  const [yCol, bCol, rCol] = [cols(Y), cols(Cb), cols(Cr)];
  const [yP, bP, rP] = [Y.plane!, Cb.plane!, Cr.plane!];
  for (let y = 0, o = 0; y < height; y++) {
    const yRow = Math.floor(y / Y.vx) * Y.stride;
    const bRow = Math.floor(y / Cb.vx) * Cb.stride;
    const rRow = Math.floor(y / Cr.vx) * Cr.stride;
    for (let x = 0; x < width; x++, o += 3) {
      const l = yP[yRow + yCol[x]!]!;
      const cb = bP[bRow + bCol[x]!]!;
      const cr = rP[rRow + rCol[x]!]!;
      data[o] = clamp(l + CR_R[cr]!);
      data[o + 1] = clamp(l + ((CB_G[cb]! + CR_G[cr]!) >> 16));
      data[o + 2] = clamp(l + CB_B[cb]!);
    }
  }
  return { width, height, channels: 3, data };
}

/**
 * How much work the fast path takes on, in compressed bytes plus a sixteenth of the pixel count: it runs
 * on the event loop, so it keeps to files it decodes in a few milliseconds (a photo of the usual upload
 * size); larger ones go to sharp, which decodes off the event loop and is faster per byte.
 */
const WORK_BUDGET = 128 * 1024;

/** Decode `bytes` if it qualifies for the fast path; undefined means "use the full decoder". */
export function decodeJpegFast(bytes: Uint8Array, target: DecodeTarget, opts: JpegFastPathOptions): DecodedImage | undefined {
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return undefined;
  const fit = target.resize ?? 'fill';
  const orientation = jpegOrientation(bytes);
  const swap = orientation >= 5 && orientation <= 8;
  // Only where sharp's shrink-on-load would pick 1/8 (the common part of the shrink, targets swapped for
  // a 90° turn as sharp swaps them).
  const shrinkIs8 = (w: number, h: number) => {
    if (w * h > opts.maxPixels || bytes.length + (w * h) / 16 > (opts.workBudget ?? WORK_BUDGET)) return false;
    const [hs, vs] = sharpShrinks(w, h, target.size, target.size, fit, swap);
    return jpegShrinkOnLoad(Math.min(hs, vs)) === 8;
  };
  const plane = decodeJpegEighth(bytes, shrinkIs8);
  if (!plane) return undefined;
  const pixels = loadedToModelInput(plane, { size: target.size, channels: target.channels, resize: fit, orientation });
  return { pixels, width: target.size, height: target.size, channels: target.channels, format: 'jpeg' };
}
