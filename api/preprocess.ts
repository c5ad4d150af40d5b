import type { DecodedImage } from '../shared/image/decoder.js';
import type { Preprocessing } from './model-source.js';

/** uint8 HWC pixels → float32 (x/255 − mean[c]) / std[c], the manifest's normalisation. */
export function normalise(img: DecodedImage, p: Preprocessing): Float32Array {
  const c = p.channels;
  if (img.channels !== c) throw new Error(`decoded ${img.channels} channels, model wants ${c}`);
  const out = new Float32Array(img.pixels.length);
  const scale = p.std.map((s) => 1 / (255 * s));
  const shift = p.mean.map((m, i) => m / p.std[i]!);
  for (let i = 0; i < out.length; i++) {
    const ch = i % c;
    out[i] = img.pixels[i]! * scale[ch]! - shift[ch]!;
  }
  return out;
}
