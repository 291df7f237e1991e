import { InputError, type Rng } from '@metad2a/core';

/** A labelled image set in NHWC float32, already normalised (what a network consumes). */
export interface ImageSet {
  x: Float32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  labels: Int32Array;
  numClasses: number;
}

export function checkImageSet(set: ImageSet, what: string): void {
  if (!(Number.isInteger(set.n) && set.n > 0)) throw new InputError({ field: `${what}.n` }, `holds ${set.n} images; training and testing need at least one`);
  const expected = set.n * set.height * set.width * set.channels;
  if (set.x.length !== expected) {
    throw new InputError({ field: `${what}.x` }, `holds ${set.x.length} values, expected n*h*w*c = ${expected}`);
  }
  if (set.labels.length !== set.n) throw new InputError({ field: `${what}.labels` }, `holds ${set.labels.length} labels for ${set.n} images`);
  for (let i = 0; i < set.n; i++) {
    const l = set.labels[i];
    if (!(l >= 0 && l < set.numClasses)) throw new InputError({ field: `${what}.labels`, record: i }, `label ${l} outside 0..${set.numClasses - 1}`);
  }
}

/** Per-channel (x/255 - mean)/std from uint8 NHWC, as torchvision's ToTensor + Normalize. */
export function normalizeImages(u8: Uint8Array, channels: number, mean: readonly number[], std: readonly number[]): Float32Array {
  const out = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) {
    const c = i % channels;
    out[i] = (u8[i] / 255 - mean[c]) / std[c];
  }
  return out;
}

/** Copy the images at `indices` into one contiguous batch. */
export function gatherImages(set: ImageSet, indices: ArrayLike<number>): { x: Float32Array; labels: Int32Array } {
  const per = set.height * set.width * set.channels;
  const x = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    x.set(set.x.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = set.labels[i];
  }
  return { x, labels };
}

/**
 * The standard CIFAR augmentation in place: random crop of the zero-padded image (pad pixels each side)
 * and a random horizontal flip. Done in JS on the batch because it is a copy per image either way.
 */
export function augmentBatch(x: Float32Array, n: number, h: number, w: number, c: number, pad: number, flip: boolean, rng: Rng): void {
  if (pad <= 0 && !flip) return;
  const per = h * w * c;
  const tmp = new Float32Array(per);
  for (let k = 0; k < n; k++) {
    const img = x.subarray(k * per, (k + 1) * per);
    tmp.set(img);
    const dy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const dx = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const mirror = flip && rng.next() < 0.5;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      for (let xx = 0; xx < w; xx++) {
        const sxRaw = mirror ? w - 1 - xx : xx;
        const sx = sxRaw + dx;
        const o = (y * w + xx) * c;
        if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
          for (let ch = 0; ch < c; ch++) img[o + ch] = 0;
        } else {
          const s = (sy * w + sx) * c;
          for (let ch = 0; ch < c; ch++) img[o + ch] = tmp[s + ch];
        }
      }
    }
  }
}
