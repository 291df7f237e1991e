import * as tf from '@tensorflow/tfjs';
import type { DataType, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { BlasAddon } from '../addon.js';
import { expandTo, operandMode, OperandMode } from '../broadcast.js';
import type { Store } from '../store.js';

/** Arguments our kernel implementations receive. `null` from an implementation means "use the stock kernel". */
export interface Ctx {
  inputs: Record<string, TensorInfo | undefined>;
  attrs: NamedAttrMap;
  store: Store;
  addon: BlasAddon;
}

export type Impl = (ctx: Ctx) => TensorInfo | null;

export function f32(store: Store, t: TensorInfo): Float32Array {
  const v = store.view(t);
  if (!(v instanceof Float32Array)) throw new Error(`kernels-blas: expected float32 data, got ${t.dtype}`);
  return v;
}

export function allFloat32(...ts: Array<TensorInfo | undefined>): boolean {
  return ts.every((t) => t == null || t.dtype === ('float32' as DataType));
}

/** Fused activations, numbered as the C epilogue expects. */
export const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, elu: 3, leakyrelu: 4, prelu: 5, sigmoid: 6 };

export interface Epilogue {
  act: number;
  alpha: number;
  bias?: { t: TensorInfo; mode: OperandMode; expand: boolean };
  prelu?: { t: TensorInfo; mode: OperandMode; expand: boolean };
}

/** Plans the fused bias + activation from shapes alone (before any allocation); null = unsupported. */
export function planEpilogue(ctx: Ctx, outShape: number[]): Epilogue | null {
  const activation = (ctx.attrs.activation as string | undefined) ?? 'linear';
  if (!Object.hasOwn(ACTIVATIONS, activation)) return null;
  const act = ACTIVATIONS[activation];
  const bias = ctx.inputs.bias;
  const prelu = ctx.inputs.preluActivationWeights;
  if (!allFloat32(bias, prelu)) return null;
  if (act === 5 && prelu == null) return null;
  // Operands may broadcast into the output but never enlarge it.
  for (const t of [bias, act === 5 ? prelu : undefined]) {
    if (t == null) continue;
    let shape: number[];
    try {
      shape = tf.broadcast_util.assertAndGetBroadcastShape(t.shape, outShape);
    } catch {
      return null;
    }
    if (shape.length !== outShape.length || shape.some((d, i) => d !== outShape[i])) return null;
  }
  const plan: Epilogue = { act, alpha: Number(ctx.attrs.leakyreluAlpha ?? 0) };
  if (bias != null) plan.bias = { t: bias, ...operandMode(bias.shape, outShape) };
  if (act === 5 && prelu != null) plan.prelu = { t: prelu, ...operandMode(prelu.shape, outShape) };
  return plan;
}

/** Applies a planned epilogue to `y` (call after all allocations). */
export function runEpilogue(ctx: Ctx, plan: Epilogue, y: Float32Array, outShape: number[]): void {
  if (plan.act === 0 && plan.bias == null) return;
  const operand = (o: Epilogue['bias']): Float32Array | null => {
    if (!o) return null;
    const v = f32(ctx.store, o.t);
    return o.expand ? expandTo(v, o.t.shape, outShape) : v;
  };
  const bias = operand(plan.bias);
  const prelu = operand(plan.prelu);
  ctx.addon.epilogue(
    y, outShape[outShape.length - 1], bias, plan.bias?.mode ?? OperandMode.None, plan.act, plan.alpha, prelu,
    plan.prelu?.mode ?? OperandMode.None,
  );
}
