/**
 * The IDX format of MNIST-style datasets: magic (0, 0, type, rank), rank big-endian uint32 dimensions,
 * then the values big-endian. Runtime-neutral: gunzip first (see gunzipIfNeeded).
 */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dims: number[];
  /** Row-major values; uint8 data is a view on the input bytes (no copy). */
  data: IdxData;
}

const TYPES: Record<number, { name: string; size: number }> = {
  0x08: { name: 'uint8', size: 1 },
  0x09: { name: 'int8', size: 1 },
  0x0b: { name: 'int16', size: 2 },
  0x0c: { name: 'int32', size: 4 },
  0x0d: { name: 'float32', size: 4 },
  0x0e: { name: 'float64', size: 8 },
};

export function parseIdx(bytes: Uint8Array): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    throw new Error('parseIdx: the data is gzip-compressed; gunzip it first (gunzipIfNeeded or zlib)');
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error('parseIdx: not an IDX file (the first two bytes of the magic number must be zero)');
  }
  const type = TYPES[bytes[2]!];
  if (!type) throw new Error(`parseIdx: unknown IDX element type 0x${bytes[2]!.toString(16)}`);
  const rank = bytes[3]!;
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw new Error(`parseIdx: truncated header (rank ${rank} needs ${header} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = header + count * type.size;
  if (bytes.length !== expected) {
    throw new Error(`parseIdx: dims [${dims.join(', ')}] of ${type.name} need ${expected} bytes, the file has ${bytes.length} (truncated or corrupt)`);
  }
  return { dims, data: readValues(view, header, count, bytes[2]!, bytes) };
}

function readValues(view: DataView, offset: number, count: number, code: number, bytes: Uint8Array): IdxData {
  switch (code) {
    case 0x08:
      return bytes.subarray(offset, offset + count);
    case 0x09:
      return new Int8Array(bytes.buffer, bytes.byteOffset + offset, count).slice();
    case 0x0b: {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 0x0c: {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 0x0d: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    default: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Encodes an array as IDX (used to write fixtures and small exports). */
export function encodeIdx(dims: number[], data: IdxData): Uint8Array {
  const code = codeOf(data);
  const size = TYPES[code]!.size;
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`encodeIdx: dims [${dims.join(', ')}] hold ${count} values, data has ${data.length}`);
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < count; i++) {
    const o = header + i * size;
    const v = data[i]!;
    if (code === 0x08) view.setUint8(o, v);
    else if (code === 0x09) view.setInt8(o, v);
    else if (code === 0x0b) view.setInt16(o, v, false);
    else if (code === 0x0c) view.setInt32(o, v, false);
    else if (code === 0x0d) view.setFloat32(o, v, false);
    else view.setFloat64(o, v, false);
  }
  return out;
}

function codeOf(data: IdxData): number {
  if (data instanceof Uint8Array) return 0x08;
  if (data instanceof Int8Array) return 0x09;
  if (data instanceof Int16Array) return 0x0b;
  if (data instanceof Int32Array) return 0x0c;
  if (data instanceof Float32Array) return 0x0d;
  return 0x0e;
}

/** Gunzips with the standard DecompressionStream (Node ≥ 18, Workers, browsers) when the gzip magic is present. */
export async function gunzipIfNeeded(bytes: Uint8Array): Promise<Uint8Array> {
  if (!(bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b)) return bytes;
  const stream = new Blob([bytes.slice().buffer as ArrayBuffer]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
