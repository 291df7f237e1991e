// Broadcasting helpers for batch dimensions and fused-op operands (bias, PReLU weights).
import { size } from './store.js';

/** Right-aligned broadcast of `shape` to `outShape`: for each flat out index, the flat in index. */
export function broadcastIndex(shape: readonly number[], outShape: readonly number[]): Int32Array {
  const total = size(outShape);
  const idx = new Int32Array(total);
  const rank = outShape.length;
  const off = rank - shape.length;
  // Strides of `shape`, with 0 where the dimension is broadcast.
  const inStrides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    inStrides[i + off] = shape[i] === 1 && outShape[i + off] !== 1 ? 0 : s;
    s *= shape[i];
  }
  const counter = new Array<number>(rank).fill(0);
  let cur = 0;
  for (let o = 0; o < total; o++) {
    idx[o] = cur;
    // Increment the multi-index, last dimension fastest.
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      cur += inStrides[d];
      if (counter[d] < outShape[d]) break;
      cur -= inStrides[d] * counter[d];
      counter[d] = 0;
    }
  }
  return idx;
}

const zeroMaps = new Map<number, Int32Array>();

/** Batch index map of an operand with batch dims `shape` inside output batch dims `outShape`; null = identity. */
export function batchMap(shape: readonly number[], outShape: readonly number[]): Int32Array | null {
  const n = size(shape);
  const total = size(outShape);
  if (n === total) return null;
  if (n === 1) {
    let z = zeroMaps.get(total);
    if (!z) {
      z = new Int32Array(total);
      if (total <= 1 << 16) zeroMaps.set(total, z);
    }
    return z;
  }
  return broadcastIndex(shape, outShape);
}

export const OperandMode = { None: 0, Scalar: 1, Column: 2, Full: 3 } as const;
export type OperandMode = (typeof OperandMode)[keyof typeof OperandMode];

/** How an operand of `shape` combines with an output of `outShape` in the C epilogue. */
export function operandMode(shape: readonly number[], outShape: readonly number[]): { mode: OperandMode; expand: boolean } {
  const n = size(shape);
  if (n === 1) return { mode: OperandMode.Scalar, expand: false };
  const last = outShape[outShape.length - 1];
  if (shape.length >= 1 && shape[shape.length - 1] === last && n === last) return { mode: OperandMode.Column, expand: false };
  if (n === size(outShape)) {
    // Same element count: usable in place only if it is the output shape up to leading 1s.
    const s = shape.filter((d, i) => !(d === 1 && shape.slice(0, i + 1).every((e) => e === 1)));
    const o = outShape.filter((d, i) => !(d === 1 && outShape.slice(0, i + 1).every((e) => e === 1)));
    if (s.length === o.length && s.every((d, i) => d === o[i])) return { mode: OperandMode.Full, expand: false };
  }
  return { mode: OperandMode.Full, expand: true };
}

/** Materialises `values` (of `shape`) broadcast to `outShape`. */
export function expandTo(values: Float32Array, shape: readonly number[], outShape: readonly number[]): Float32Array {
  const idx = broadcastIndex(shape, outShape);
  const out = new Float32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = values[idx[i]];
  return out;
}
