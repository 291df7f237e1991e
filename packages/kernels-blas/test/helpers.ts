import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerBlasKernels, type BlasStatus } from '../src/index.js';

/** Starts the wasm backend with our kernels; the cpu backend keeps its stock kernels as the reference. */
export async function setup(): Promise<BlasStatus> {
  await tf.setBackend('cpu');
  await tf.setBackend('wasm');
  await tf.ready();
  return registerBlasKernels('wasm');
}

/** Deterministic pseudo-random floats in [-1, 1) (an LCG, so cases are reproducible). */
export function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export interface Result {
  shape: number[];
  dtype: string;
  values: Float32Array | Int32Array;
}

/** Runs `f` on a backend and returns its outputs' data (tensors are disposed). */
export async function runOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(f);
  const list = Array.isArray(outs) ? outs : [outs];
  const res = list.map((t) => ({ shape: t.shape.slice(), dtype: t.dtype, values: t.dataSync() as Float32Array | Int32Array }));
  tf.dispose(list);
  return res;
}

/** max |a - b| / max |b|: the error relative to the reference's scale. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i]) || !Number.isFinite(b[i])) {
      if (a[i] !== b[i]) return Infinity;
      continue;
    }
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}

/** Runs `f` on wasm (ours) and on stock cpu; returns the worst relative error over all outputs. */
export async function compare(f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  const ours = await runOn('wasm', f);
  const ref = await runOn('cpu', f);
  await tf.setBackend('wasm');
  let worst = 0;
  ref.forEach((r, i) => {
    const o = ours[i];
    if (o.dtype !== r.dtype || o.shape.join() !== r.shape.join()) {
      throw new Error(`output ${i}: ours ${o.dtype}[${o.shape}] vs reference ${r.dtype}[${r.shape}]`);
    }
    worst = Math.max(worst, relErr(o.values, r.values));
    if (process.env.SHOW_ERR) console.log(`relErr ${relErr(o.values, r.values).toExponential(2)} [${r.shape}]`);
  });
  return worst;
}

export const TOL = 1e-5;
