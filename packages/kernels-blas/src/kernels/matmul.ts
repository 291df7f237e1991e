// BatchMatMul and _FusedMatMul over cblas_sgemm, with full numpy-style broadcasting of batch dims.
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { batchMap } from '../broadcast.js';
import { size } from '../store.js';
import { allFloat32, type Ctx, f32, planEpilogue, runEpilogue } from './common.js';

interface Plan {
  outShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  aMap: Int32Array | null;
  bMap: Int32Array | null;
}

function plan(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan {
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = transposeA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = transposeA ? a.shape[ar - 2] : a.shape[ar - 1];
  const kb = transposeB ? b.shape[br - 1] : b.shape[br - 2];
  const n = transposeB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and ` +
        `transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const aOuter = a.shape.slice(0, -2);
  const bOuter = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const batch = size(outer);
  const empty = batch * m * n === 0;
  return {
    outShape: [...outer, m, n],
    batch,
    m,
    n,
    k,
    aMap: empty ? null : batchMap(aOuter, outer),
    bMap: empty ? null : batchMap(bOuter, outer),
  };
}

function isZeroMap(map: Int32Array | null): boolean {
  if (!map) return false;
  for (let i = 0; i < map.length; i++) if (map[i] !== 0) return false;
  return true;
}

function multiply(ctx: Ctx, p: Plan, a: TensorInfo, b: TensorInfo, out: TensorInfo, ta: boolean, tb: boolean): Float32Array {
  const A = f32(ctx.store, a);
  const B = f32(ctx.store, b);
  const C = f32(ctx.store, out);
  if (p.batch * p.m * p.n === 0) return C;
  if (!ta && p.aMap === null && p.batch > 1 && isZeroMap(p.bMap)) {
    // A's batches are contiguous rows and B is shared: one [batch*m, k] x [k, n] product.
    ctx.addon.bmm(A, B, C, 1, p.batch * p.m, p.n, p.k, false, tb, null, null);
  } else {
    ctx.addon.bmm(A, B, C, p.batch, p.m, p.n, p.k, ta, tb, p.aMap, p.bMap);
  }
  return C;
}

export function batchMatMul(ctx: Ctx): TensorInfo | null {
  const { a, b } = ctx.inputs;
  if (!a || !b || !allFloat32(a, b) || a.shape.length < 2 || b.shape.length < 2) return null;
  const ta = Boolean(ctx.attrs.transposeA);
  const tb = Boolean(ctx.attrs.transposeB);
  const p = plan(a, b, ta, tb);
  const out = ctx.store.out(p.outShape, 'float32');
  multiply(ctx, p, a, b, out, ta, tb);
  return out;
}

export function fusedMatMul(ctx: Ctx): TensorInfo | null {
  const { a, b } = ctx.inputs;
  if (!a || !b || !allFloat32(a, b) || a.shape.length < 2 || b.shape.length < 2) return null;
  const ta = Boolean(ctx.attrs.transposeA);
  const tb = Boolean(ctx.attrs.transposeB);
  const p = plan(a, b, ta, tb);
  const ep = planEpilogue(ctx, p.outShape);
  if (!ep) return null;
  const out = ctx.store.out(p.outShape, 'float32');
  const C = multiply(ctx, p, a, b, out, ta, tb);
  if (C.length > 0) runEpilogue(ctx, ep, C, p.outShape);
  return out;
}
