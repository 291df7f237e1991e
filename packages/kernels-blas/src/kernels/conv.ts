// Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter (NHWC; im2col + sgemm in the addon)
// and the depthwise family (direct loops in the addon). NCHW and non-float32 go to the stock kernels.
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { allFloat32, type Ctx, f32, planEpilogue, runEpilogue } from './common.js';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type Shape4 = [number, number, number, number];
type Pad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
type Rounding = Parameters<typeof tf.backend_util.computeConv2DInfo>[5];

function isNHWC(ctx: Ctx): boolean {
  const f = ctx.attrs.dataFormat as string | undefined;
  return f == null || f === 'NHWC' || f === 'channelsLast';
}

function info(ctx: Ctx, xShape: readonly number[], filterShape: readonly number[], depthwise: boolean, dilations: unknown): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    ctx.attrs.strides as number | [number, number],
    (dilations ?? 1) as number | [number, number],
    ctx.attrs.pad as Pad,
    ctx.attrs.dimRoundingMode as Rounding,
    depthwise,
    'channelsLast',
  );
}

/** The addon's geometry vector: N,H,W,C, OH,OW,CO, FH,FW, SH,SW, DH,DW, padTop,padLeft. */
function params(ci: Conv2DInfo): Int32Array {
  return Int32Array.from([
    ci.batchSize, ci.inHeight, ci.inWidth, ci.inChannels, ci.outHeight, ci.outWidth, ci.outChannels,
    ci.filterHeight, ci.filterWidth, ci.strideHeight, ci.strideWidth, ci.dilationHeight, ci.dilationWidth,
    ci.padInfo.top, ci.padInfo.left,
  ]);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkShape(what: string, got: readonly number[], want: readonly number[]): void {
  if (!sameShape(got, want)) throw new Error(`kernels-blas: ${what} has shape [${got}], expected [${want}]`);
}

function forward(ctx: Ctx, depthwise: boolean, fused: boolean): TensorInfo | null {
  const { x, filter } = ctx.inputs;
  if (!x || !filter || !allFloat32(x, filter) || !isNHWC(ctx) || x.shape.length !== 4 || filter.shape.length !== 4) return null;
  const ci = info(ctx, x.shape, filter.shape, depthwise, ctx.attrs.dilations);
  if (filter.shape[2] !== ci.inChannels) {
    throw new Error(`Error in conv2d: depth of input (${ci.inChannels}) must match input depth for filter ${filter.shape[2]}.`);
  }
  const outShape = ci.outShape as number[];
  const ep = fused ? planEpilogue(ctx, outShape) : null;
  if (fused && !ep) return null;
  const out = ctx.store.out(outShape, 'float32');
  const Y = f32(ctx.store, out);
  if (Y.length === 0) return out;
  const X = f32(ctx.store, x);
  const W = f32(ctx.store, filter);
  if (depthwise) ctx.addon.depthwise(X, W, Y, params(ci));
  else ctx.addon.conv2d(X, W, Y, params(ci));
  if (ep) runEpilogue(ctx, ep, Y, outShape);
  return out;
}

export const conv2d = (ctx: Ctx) => forward(ctx, false, false);
export const fusedConv2d = (ctx: Ctx) => forward(ctx, false, true);
export const depthwiseConv2d = (ctx: Ctx) => forward(ctx, true, false);
export const fusedDepthwiseConv2d = (ctx: Ctx) => forward(ctx, true, true);

function backpropInput(ctx: Ctx, depthwise: boolean): TensorInfo | null {
  const { dy, filter } = ctx.inputs;
  if (!dy || !filter || !allFloat32(dy, filter) || !isNHWC(ctx) || dy.shape.length !== 4 || filter.shape.length !== 4) return null;
  const inputShape = ctx.attrs.inputShape as number[];
  const ci = info(ctx, inputShape, filter.shape, depthwise, depthwise ? ctx.attrs.dilations : 1);
  checkShape('dy', dy.shape, ci.outShape);
  const out = ctx.store.out([...ci.inShape], 'float32');
  const DX = f32(ctx.store, out);
  if (DX.length === 0) return out;
  const DY = f32(ctx.store, dy);
  const W = f32(ctx.store, filter);
  if (depthwise) ctx.addon.depthwiseBackpropInput(DY, W, DX, params(ci));
  else ctx.addon.conv2dBackpropInput(DY, W, DX, params(ci));
  return out;
}

function backpropFilter(ctx: Ctx, depthwise: boolean): TensorInfo | null {
  const { x, dy } = ctx.inputs;
  if (!x || !dy || !allFloat32(x, dy) || !isNHWC(ctx) || x.shape.length !== 4 || dy.shape.length !== 4) return null;
  const filterShape = ctx.attrs.filterShape as number[];
  const ci = info(ctx, x.shape, filterShape, depthwise, depthwise ? ctx.attrs.dilations : 1);
  checkShape('dy', dy.shape, ci.outShape);
  const out = ctx.store.out([...filterShape], 'float32');
  const DW = f32(ctx.store, out);
  if (DW.length === 0) return out;
  const X = f32(ctx.store, x);
  const DY = f32(ctx.store, dy);
  if (depthwise) ctx.addon.depthwiseBackpropFilter(X, DY, DW, params(ci));
  else ctx.addon.conv2dBackpropFilter(X, DY, DW, params(ci));
  return out;
}

export const conv2dBackpropInput = (ctx: Ctx) => backpropInput(ctx, false);
export const conv2dBackpropFilter = (ctx: Ctx) => backpropFilter(ctx, false);
export const depthwiseBackpropInput = (ctx: Ctx) => backpropInput(ctx, true);
export const depthwiseBackpropFilter = (ctx: Ctx) => backpropFilter(ctx, true);
