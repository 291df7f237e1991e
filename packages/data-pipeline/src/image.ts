import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { InputError } from '@metad2a/core';

/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): data.length === width * height * 3. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Replicate one grey channel to RGB (MNIST and grey PNG/JPEG files). */
export function grayToRgb(gray: Uint8Array, width: number, height: number): RgbImage {
  const n = width * height;
  if (gray.length !== n) throw new RangeError(`grayToRgb: ${gray.length} values for ${width}x${height}`);
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = gray[i];
    data[3 * i] = v;
    data[3 * i + 1] = v;
    data[3 * i + 2] = v;
  }
  return { width, height, data };
}

/** CIFAR's planar layout (all R, all G, all B; each row-major) to interleaved RGB. */
export function planarToRgb(planes: Uint8Array, width: number, height: number): RgbImage {
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    data[3 * i] = planes[i];
    data[3 * i + 1] = planes[n + i];
    data[3 * i + 2] = planes[2 * n + i];
  }
  return { width, height, data };
}

function rgbaToRgb(rgba: Uint8Array, width: number, height: number): RgbImage {
  // Transparent pixels are composited on black: the alpha channel carries no class information here.
  const n = width * height;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3];
    if (a === 255) {
      data[3 * i] = rgba[4 * i];
      data[3 * i + 1] = rgba[4 * i + 1];
      data[3 * i + 2] = rgba[4 * i + 2];
    } else {
      data[3 * i] = Math.round((rgba[4 * i] * a) / 255);
      data[3 * i + 1] = Math.round((rgba[4 * i + 1] * a) / 255);
      data[3 * i + 2] = Math.round((rgba[4 * i + 2] * a) / 255);
    }
  }
  return { width, height, data };
}

export type ImageFormat = 'jpeg' | 'png';

/** The format from the file's first bytes (never from its name, which users get wrong). */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && sig.every((b, i) => bytes[i] === b)) return 'png';
  return null;
}

/**
 * Decode a JPEG or PNG file's bytes to RGB (grey, grey+alpha, palette and RGBA all become RGB).
 * `file` is only used to name the file in errors.
 */
export function decodeImage(bytes: Uint8Array, file: string): RgbImage {
  const format = sniffImageFormat(bytes);
  if (!format) throw new InputError({ file }, 'not a JPEG or PNG image (unknown file signature)', 'image folders may hold .jpg/.jpeg/.png files only');
  let rgba: { width: number; height: number; data: Uint8Array };
  try {
    if (format === 'jpeg') {
      rgba = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 200, maxMemoryUsageInMB: 2048 });
    } else {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      rgba = { width: png.width, height: png.height, data: png.data };
    }
  } catch (e) {
    throw new InputError({ file }, `corrupt ${format.toUpperCase()} image: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (!(rgba.width > 0 && rgba.height > 0) || rgba.data.length < rgba.width * rgba.height * 4) {
    throw new InputError({ file }, `corrupt ${format.toUpperCase()} image: decoded to ${rgba.width}x${rgba.height} with ${rgba.data.length} bytes`);
  }
  return rgbaToRgb(rgba.data, rgba.width, rgba.height);
}

/**
 * Resize to size x size (aspect ratio is not kept, as torchvision's Resize((s, s)) in the original).
 * Enlarging is bilinear with half-pixel centres; shrinking averages the source area that each output
 * pixel covers, so large photos do not alias.
 */
export function resizeRgb(img: RgbImage, width: number, height: number = width): RgbImage {
  if (img.width === width && img.height === height) return img;
  const out = new Uint8Array(width * height * 3);
  const xs = axisWeights(img.width, width);
  const ys = axisWeights(img.height, height);
  const row = new Float64Array(width * 3);
  for (let oy = 0; oy < height; oy++) {
    row.fill(0);
    const ry = ys[oy];
    for (let k = 0; k < ry.idx.length; k++) {
      const sy = ry.idx[k];
      const wy = ry.w[k];
      const base = sy * img.width * 3;
      for (let ox = 0; ox < width; ox++) {
        const rx = xs[ox];
        let r = 0;
        let g = 0;
        let b = 0;
        for (let j = 0; j < rx.idx.length; j++) {
          const p = base + rx.idx[j] * 3;
          const w = rx.w[j];
          r += img.data[p] * w;
          g += img.data[p + 1] * w;
          b += img.data[p + 2] * w;
        }
        row[ox * 3] += r * wy;
        row[ox * 3 + 1] += g * wy;
        row[ox * 3 + 2] += b * wy;
      }
    }
    const o = oy * width * 3;
    for (let i = 0; i < width * 3; i++) out[o + i] = Math.min(255, Math.max(0, Math.round(row[i])));
  }
  return { width, height, data: out };
}

/** Per output coordinate: source indices and weights (summing to 1). */
function axisWeights(inSize: number, outSize: number): Array<{ idx: number[]; w: number[] }> {
  const scale = inSize / outSize;
  const res: Array<{ idx: number[]; w: number[] }> = [];
  for (let o = 0; o < outSize; o++) {
    if (scale > 1) {
      // area average over [o*scale, (o+1)*scale)
      const lo = o * scale;
      const hi = (o + 1) * scale;
      const idx: number[] = [];
      const w: number[] = [];
      for (let s = Math.floor(lo); s < Math.ceil(hi) && s < inSize; s++) {
        const cover = Math.min(hi, s + 1) - Math.max(lo, s);
        if (cover > 1e-12) {
          idx.push(s);
          w.push(cover / scale);
        }
      }
      res.push({ idx, w });
    } else {
      // bilinear, half-pixel centres, edge-clamped
      const src = (o + 0.5) * scale - 0.5;
      const s0 = Math.floor(src);
      const f = src - s0;
      const a = Math.min(inSize - 1, Math.max(0, s0));
      const b = Math.min(inSize - 1, Math.max(0, s0 + 1));
      if (a === b || f === 0) res.push({ idx: [a], w: [1] });
      else res.push({ idx: [a, b], w: [1 - f, f] });
    }
  }
  return res;
}
