// UnsortedSegmentSum (the gradient of gather), which the wasm backend lacks. TensorFlow semantics:
// out[s, ...] = sum of x[i, ...] over i with segmentIds[i] == s; ids outside [0, numSegments) are dropped.
import type { TensorInfo } from '@tensorflow/tfjs';
import { size } from '../store.js';
import type { Ctx } from './common.js';

export function unsortedSegmentSum(ctx: Ctx): TensorInfo | null {
  const { x, segmentIds } = ctx.inputs;
  if (!x || !segmentIds || (x.dtype !== 'float32' && x.dtype !== 'int32') || segmentIds.dtype !== 'int32') return null;
  const numSegments = Number(ctx.attrs.numSegments);
  const idRank = segmentIds.shape.length;
  const lead = x.shape.slice(0, idRank);
  if (lead.length !== idRank || lead.some((d, i) => d !== segmentIds.shape[i])) {
    throw new Error(`kernels-blas: UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`);
  }
  const innerShape = x.shape.slice(idRank);
  const inner = size(innerShape);
  const out = ctx.store.out([numSegments, ...innerShape], x.dtype);
  const O = ctx.store.view(out);
  O.fill(0);
  const X = ctx.store.view(x);
  const ids = ctx.store.view(segmentIds);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue;
    const o = s * inner;
    const xi = i * inner;
    for (let j = 0; j < inner; j++) O[o + j] += X[xi + j];
  }
  return out;
}
