/**
 * Image header readers, without decoding: dimensions (to refuse decompression bombs before decoding)
 * and EXIF orientation, for PNG, JPEG and WebP.
 */
const be16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const le16 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
const le24 = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);
const be32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const le32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
const tag = (b: Uint8Array, o: number) => String.fromCharCode(b[o]!, b[o + 1]!, b[o + 2]!, b[o + 3]!);

export interface ImageSize {
  width: number;
  height: number;
}

/** PNG: the IHDR chunk, which must come first. */
export function pngSize(b: Uint8Array): ImageSize | undefined {
  if (b.length < 24 || tag(b, 12) !== 'IHDR') return undefined;
  return { width: be32(b, 16), height: be32(b, 20) };
}

/** JPEG segments up to the first scan: [marker, payload start, payload end]. */
function* jpegSegments(b: Uint8Array): Generator<[number, number, number]> {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return; // lost sync: corrupt
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2; // standalone markers carry no length
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return; // end of image / start of scan
    const len = be16(b, i + 2);
    if (len < 2) return;
    yield [marker, i + 4, Math.min(b.length, i + 2 + len)];
    i += 2 + len;
  }
}

/** JPEG: the first SOFn frame header (C0–CF except DHT C4, JPG C8, DAC CC). */
export function jpegSize(b: Uint8Array): ImageSize | undefined {
  for (const [m, s, e] of jpegSegments(b)) {
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (e - s < 5) return undefined;
      const height = be16(b, s + 1);
      const width = be16(b, s + 3);
      return width > 0 && height > 0 ? { width, height } : undefined; // height 0 (DNL) is not supported
    }
  }
  return undefined;
}

/** WebP: lossy 'VP8 ' key-frame header, lossless 'VP8L' header, or the extended 'VP8X' canvas size. */
export function webpSize(b: Uint8Array): ImageSize | undefined {
  if (b.length < 30) return undefined;
  const chunk = tag(b, 12);
  if (chunk === 'VP8 ') {
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return undefined;
    return { width: le16(b, 26) & 0x3fff, height: le16(b, 28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) return undefined;
    const bits = le32(b, 21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') return { width: le24(b, 24) + 1, height: le24(b, 27) + 1 };
  return undefined;
}

/** WebP extended format flags (VP8X): is it animated? */
export function webpIsAnimated(b: Uint8Array): boolean {
  return b.length >= 21 && tag(b, 12) === 'VP8X' && (b[20]! & 0x02) !== 0;
}

/** Orientation tag (0x0112) in a TIFF structure's first IFD; 1 when absent or invalid. */
function tiffOrientation(b: Uint8Array, start: number, end: number): number {
  if (end - start < 8) return 1;
  const le = b[start] === 0x49 && b[start + 1] === 0x49;
  if (!le && !(b[start] === 0x4d && b[start + 1] === 0x4d)) return 1;
  const u16 = (o: number) => (le ? le16(b, o) : be16(b, o));
  const u32 = (o: number) => (le ? le32(b, o) : be32(b, o));
  if (u16(start + 2) !== 42) return 1;
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return 1;
  const count = u16(ifd);
  for (let k = 0; k < count; k++) {
    const e = ifd + 2 + k * 12;
    if (e + 12 > end) break;
    if (u16(e) === 0x0112) {
      const v = u16(e + 2) === 3 ? u16(e + 8) : 1; // type SHORT
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

const EXIF_HEADER = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"
const hasExifHeader = (b: Uint8Array, o: number) => EXIF_HEADER.every((x, i) => b[o + i] === x);

/** EXIF orientation of a JPEG: the first APP1 "Exif" segment. */
export function jpegOrientation(b: Uint8Array): number {
  for (const [m, s, e] of jpegSegments(b)) {
    if (m === 0xe1 && hasExifHeader(b, s)) return tiffOrientation(b, s + 6, e);
  }
  return 1;
}

/** EXIF orientation of a WebP: its 'EXIF' chunk (raw TIFF, sometimes behind an "Exif\0\0" header). */
export function webpOrientation(b: Uint8Array): number {
  if (tag(b, 12) !== 'VP8X') return 1;
  for (let o = 12; o + 8 <= b.length; ) {
    const len = le32(b, o + 4);
    if (tag(b, o) === 'EXIF') {
      const s = o + 8 + (hasExifHeader(b, o + 8) ? 6 : 0);
      return tiffOrientation(b, s, Math.min(b.length, o + 8 + len));
    }
    o += 8 + len + (len & 1);
  }
  return 1;
}

/** EXIF orientation of a PNG: its 'eXIf' chunk (before the image data). */
export function pngOrientation(b: Uint8Array): number {
  for (let o = 8; o + 8 <= b.length; ) {
    const len = be32(b, o);
    const t = tag(b, o + 4);
    if (t === 'eXIf') return tiffOrientation(b, o + 8, Math.min(b.length, o + 8 + len));
    if (t === 'IDAT' || t === 'IEND') break;
    o += 12 + len;
  }
  return 1;
}
