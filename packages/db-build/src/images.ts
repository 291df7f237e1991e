import type { ImageSet } from '@metad2a/arch-training';
import { resizeRgb, type ImageDataset } from '@metad2a/data-pipeline';

/** Per-channel mean and std (of x/255) of the training images, so every source is normalised alike. */
export interface ChannelStats {
  mean: [number, number, number];
  std: [number, number, number];
}

/** Read the records of each task class, resized to size x size, as uint8 HWC with task labels 0..k-1. */
export async function readTaskImages(ds: ImageDataset, perClass: readonly (readonly number[])[], size: number): Promise<{ u8: Uint8Array; labels: Int32Array }> {
  const n = perClass.reduce((s, c) => s + c.length, 0);
  const per = size * size * 3;
  const u8 = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  let k = 0;
  for (let c = 0; c < perClass.length; c++) {
    const imgs = await ds.read(perClass[c]);
    for (const img of imgs) {
      u8.set(resizeRgb(img, size, size).data, k * per);
      labels[k++] = c;
    }
  }
  return { u8, labels };
}

export function channelStats(u8: Uint8Array): ChannelStats {
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  for (let i = 0; i < u8.length; i++) {
    const v = u8[i] / 255;
    sum[i % 3] += v;
    sq[i % 3] += v * v;
  }
  const n = u8.length / 3;
  const mean = sum.map((s) => s / n) as ChannelStats['mean'];
  // A constant channel (e.g. a blank class) would divide by zero; 1e-3 keeps it finite.
  const std = sq.map((s, c) => Math.max(1e-3, Math.sqrt(Math.max(0, s / n - mean[c] * mean[c])))) as ChannelStats['std'];
  return { mean, std };
}

export function toImageSet(u8: Uint8Array, labels: Int32Array, size: number, numClasses: number, stats: ChannelStats): ImageSet {
  const x = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) {
    const c = i % 3;
    x[i] = (u8[i] / 255 - stats.mean[c]) / stats.std[c];
  }
  return { x, n: labels.length, height: size, width: size, channels: 3, labels, numClasses };
}

/** Train and test sets of a task, both normalised with the training images' statistics. */
export async function loadTaskSets(
  ds: ImageDataset,
  train: readonly (readonly number[])[],
  test: readonly (readonly number[])[],
  size: number,
): Promise<{ train: ImageSet; test: ImageSet; stats: ChannelStats }> {
  const tr = await readTaskImages(ds, train, size);
  const te = await readTaskImages(ds, test, size);
  const stats = channelStats(tr.u8);
  return { train: toImageSet(tr.u8, tr.labels, size, train.length, stats), test: toImageSet(te.u8, te.labels, size, test.length, stats), stats };
}
