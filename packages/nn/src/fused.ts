import * as tf from '@tensorflow/tfjs';
import { blasAddon, fusedAddon, hostTensor, hostView, type BlasAddon } from '@metad2a/kernels-blas';
import type { Linear } from './module.js';

/**
 * A differentiable op computed on the host: `forward` returns the outputs, `backward` the gradient
 * of every input (by name) from the gradients of all outputs. Unlike tf.customGrad it allows several
 * outputs. The fused ops below use it to replace tens of small tfjs kernels (each with its own
 * engine and tape overhead, and wasm's slow axis-0 sums and transposes) by a few OpenBLAS calls.
 */
export function hostOp(
  inputs: Record<string, tf.Tensor>,
  forward: (save: (tensors: tf.Tensor[]) => void) => tf.Tensor[],
  backward: (dys: tf.Tensor[], saved: tf.Tensor[]) => Record<string, tf.Tensor>,
): tf.Tensor[] {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const engine = tf.engine() as any;
  const out = engine.runKernelFunc({
    // save() keeps references (not copies) to tensors the backward pass reads, as tfjs kernels do:
    // intermediate inputs are disposed by the callers' tidy scopes before the backward pass runs
    forwardFunc: (_backend: unknown, save: (tensors: tf.Tensor[]) => void) => forward(save),
    backwardsFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const grads = backward(Array.isArray(dy) ? dy : [dy], saved ?? []);
      const map: Record<string, () => tf.Tensor> = {};
      for (const k of Object.keys(inputs)) {
        const g = grads[k];
        if (!g) throw new Error(`hostOp: no gradient for input '${k}'`);
        map[k] = () => g;
      }
      return map;
    },
    inputs,
  });
  return Array.isArray(out) ? out : [out];
}

/**
 * Whether the fused host ops can run in this process at all: the OpenBLAS addon is built and not
 * disabled (METAD2A_BLAS=off). fusedOps() further needs our kernels on the current backend.
 */
export function fusedOpsAvailable(): boolean {
  return blasAddon() !== null && (process.env.METAD2A_BLAS ?? '').toLowerCase() !== 'off';
}

/** The BLAS addon when fused host ops should run on the current backend (see kernels-blas fusedAddon). */
export function fusedOps(): BlasAddon | null {
  return fusedAddon();
}

/**
 * Reusable host buffers (large typed arrays allocated per call cost more in GC than the
 * arithmetic). Contents are unspecified; a buffer is only valid until the next scratch() with the
 * same key.
 */
const scratchBufs = new Map<string, Float32Array>();
function scratch(key: string, n: number): Float32Array {
  let b = scratchBufs.get(key);
  if (!b || b.length < n) {
    b = new Float32Array(Math.max(n, Math.ceil((b?.length ?? 0) * 1.5)));
    scratchBufs.set(key, b);
  }
  return b.length === n ? b : b.subarray(0, n);
}



/**
 * Several linear maps of the same rows at once: x [R, in] -> y_i = s_i (x W_i^T + b_i) [R, out_i].
 * `data`: x is data that needs no gradient (the dataset's feature vectors): the backward pass then
 * computes only the weight gradients. One op forwards and backwards; falls back to tfjs ops where
 * the fused host ops are off.
 */
export function multiLinear(x: tf.Tensor, layers: readonly Linear[], options: { scales?: readonly number[]; data?: boolean } = {}): tf.Tensor2D[] {
  const scales = options.scales ?? layers.map(() => 1);
  const addon = fusedOps();
  if (!addon) {
    return layers.map((l, i) => {
      const w = scales[i] === 1 ? l.weight : l.weight.mul(scales[i]);
      const y = tf.matMul(x.reshape([-1, l.inFeatures]) as tf.Tensor2D, w as tf.Tensor2D, false, true);
      return (l.bias ? y.add(scales[i] === 1 ? l.bias : l.bias.mul(scales[i])) : y) as tf.Tensor2D;
    });
  }
  const IN = x.shape[x.rank - 1];
  const R = x.size / IN;
  for (const l of layers) if (l.inFeatures !== IN) throw new Error(`multiLinear: layer expects ${l.inFeatures} inputs, rows have ${IN}`);
  const inputs: Record<string, tf.Tensor> = {};
  if (!options.data) inputs.x = x;
  layers.forEach((l, i) => {
    inputs[`w${i}`] = l.weight;
    if (l.bias) inputs[`b${i}`] = l.bias;
  });
  // all layers as one product with stacked weights [sum O, in]: one wide gemm runs ~1.4x faster
  // than several narrow ones; outputs and output gradients are split / stacked by row copies
  const outSizes = layers.map((l) => l.outFeatures);
  const TOT = outSizes.reduce((a, b) => a + b, 0);
  const offs = outSizes.map((_, i) => outSizes.slice(0, i).reduce((a, b) => a + b, 0));
  const stackedWeights = (key: string): Float32Array => {
    const w = scratch(key, TOT * IN);
    layers.forEach((l, i) => addon.copy2d(w, offs[i] * IN, IN, hostView(l.weight), 0, IN, outSizes[i], IN, scales[i]));
    return w;
  };
  const forward = (save: (t: tf.Tensor[]) => void): tf.Tensor[] => {
    save([x]);
    const outs = layers.map((l) => hostTensor([R, l.outFeatures]));
    const W = stackedWeights('mlW');
    const bias = scratch('mlB', TOT);
    layers.forEach((l, i) => {
      if (l.bias) addon.copy2d(bias, offs[i], TOT, hostView(l.bias), 0, outSizes[i], 1, outSizes[i], scales[i]);
      else bias.fill(0, offs[i], offs[i] + outSizes[i]);
    });
    const single = layers.length === 1;
    const Y = single ? hostView(outs[0]) : scratch('mlY', R * TOT);
    addon.gemm(false, true, R, TOT, IN, 1, hostView(x), IN, W, IN, 0, Y, TOT);
    addon.epilogue(Y, TOT, bias, 2, 0, 0, null, 0);
    if (!single) layers.forEach((_, i) => addon.copy2d(hostView(outs[i]), 0, outSizes[i], Y, offs[i], TOT, R, outSizes[i]));
    return outs;
  };
  const backward = (dys: tf.Tensor[], saved: tf.Tensor[]): Record<string, tf.Tensor> => {
    const grads: Record<string, tf.Tensor> = {};
    layers.forEach((l, i) => {
      grads[`w${i}`] = hostTensor([l.outFeatures, IN]);
      if (l.bias) grads[`b${i}`] = hostTensor([l.outFeatures]);
    });
    if (!options.data) grads.x = hostTensor(x.shape);
    // stacked output gradients with the scales applied: s_i dy_i
    const DY = scratch('mlDY', R * TOT);
    layers.forEach((_, i) => addon.copy2d(DY, offs[i], TOT, hostView(dys[i]), 0, outSizes[i], R, outSizes[i], scales[i]));
    const xs = hostView(saved[0]);
    const dW = scratch('mlDW', TOT * IN);
    addon.gemm(true, false, TOT, IN, R, 1, DY, TOT, xs, IN, 0, dW, IN);
    const db = scratch('mlDB', TOT);
    addon.colSum(DY, R, TOT, db, false);
    layers.forEach((l, i) => {
      addon.copy2d(hostView(grads[`w${i}`]), 0, IN, dW, offs[i] * IN, IN, outSizes[i], IN);
      if (l.bias) addon.copy2d(hostView(grads[`b${i}`]), 0, outSizes[i], db, offs[i], outSizes[i], 1, outSizes[i]);
    });
    // dx = sum_i s_i dy_i W_i = DY (unscaled stacked W)
    if (!options.data) {
      const W = scratch('mlW', TOT * IN);
      layers.forEach((l, i) => addon.copy2d(W, offs[i] * IN, IN, hostView(l.weight), 0, IN, outSizes[i], IN));
      addon.gemm(false, false, R, IN, TOT, 1, DY, TOT, W, IN, 0, hostView(grads.x), IN);
    }
    return grads;
  };
  return hostOp(inputs, forward, backward) as tf.Tensor2D[];
}

/** y = x + relu(x W^T + b) for rows x [R, d] (a Set-Transformer block's output layer), as one op. */
export function residualReluLinear(x: tf.Tensor2D, layer: Linear): tf.Tensor2D {
  const addon = fusedOps();
  if (!addon || !layer.bias) {
    return x.add(tf.fused.matMul({ a: x, b: layer.weight.transpose() as tf.Tensor2D, bias: layer.bias ?? undefined, activation: 'relu' })) as tf.Tensor2D;
  }
  const [R, D] = x.shape;
  if (layer.inFeatures !== D || layer.outFeatures !== D) throw new Error(`residualReluLinear: needs a ${D} -> ${D} layer`);
  let act: tf.Tensor | null = null; // relu(x W^T + b), saved for the backward pass
  const forward = (save: (t: tf.Tensor[]) => void): tf.Tensor[] => {
    const y = hostTensor([R, D]);
    const a = hostTensor([R, D]);
    const av = hostView(a);
    addon.gemm(false, true, R, D, D, 1, hostView(x), D, hostView(layer.weight), D, 0, av, D);
    addon.epilogue(av, D, hostView(layer.bias!), 2, 1, 0, null, 0);
    addon.ewise(0, hostView(y), hostView(x), av, R * D);
    save([x, a]);
    act = a;
    return [y];
  };
  const backward = (dys: tf.Tensor[], saved: tf.Tensor[]): Record<string, tf.Tensor> => {
    const dx = hostTensor([R, D]);
    const dW = hostTensor([D, D]);
    const db = hostTensor([D]);
    const dy = hostView(dys[0]);
    const dp = scratch('rrDP', R * D);
    addon.ewise(1, dp, dy, hostView(saved[1]), R * D);
    const dxv = hostView(dx);
    addon.ewise(2, dxv, dy, null, R * D);
    addon.gemm(false, false, R, D, D, 1, dp, D, hostView(layer.weight), D, 1, dxv, D);
    addon.gemm(true, false, D, D, R, 1, dp, D, hostView(saved[0]), D, 0, hostView(dW), D);
    addon.colSum(dp, R, D, hostView(db), false);
    return { x: dx, w: dW, b: db };
  };
  void act;
  return hostOp({ x, w: layer.weight, b: layer.bias }, forward, backward)[0] as tf.Tensor2D;
}

/**
 * Multi-head layout as one op each way: split rows [N*rows, h*d] into heads [N*h, rows, d] (head j =
 * features j*d .. (j+1)*d - 1), or merge them back. The tfjs form is reshape-transpose-reshape, and
 * wasm's Transpose of these small trailing dimensions is slow (about 1 ms per call at N*rows = 12800).
 */
export function splitHeads(x: tf.Tensor, N: number, rows: number, h: number, d: number): tf.Tensor3D {
  return headsOp(x, N, rows, h, d, false) as tf.Tensor3D;
}

/** Inverse of splitHeads: [N*h, rows, d] -> [N*rows, h*d]. */
export function mergeHeads(x: tf.Tensor, N: number, rows: number, h: number, d: number): tf.Tensor2D {
  return headsOp(x, N, rows, h, d, true) as tf.Tensor2D;
}

function headsOp(x: tf.Tensor, N: number, rows: number, h: number, d: number, merge: boolean): tf.Tensor {
  const split = [N * h, rows, d];
  const merged = [N * rows, h * d];
  if (x.size !== N * rows * h * d) throw new Error(`heads: ${x.size} values for ${N}x${rows}x${h}x${d}`);
  const addon = fusedOps();
  if (!addon) {
    return merge
      ? x.reshape([N, h, rows, d]).transpose([0, 2, 1, 3]).reshape(merged)
      : x.reshape([N, rows, h, d]).transpose([0, 2, 1, 3]).reshape(split);
  }
  const run = (src: tf.Tensor, toMerged: boolean): tf.Tensor => {
    const out = hostTensor(toMerged ? merged : split);
    addon.heads(hostView(src), hostView(out), N, rows, h, d, toMerged);
    return out;
  };
  return hostOp({ x }, () => [run(x, merge)], (dys) => ({ x: run(dys[0], !merge).reshape(x.shape) }))[0];
}

/**
 * Multi-head attention core on split heads: Qh [N*h, n, d], Kh and Vh [N*h, m, d] (keys already
 * scaled) -> Qh + softmax(Qh Kh^T) Vh, with an optional key mask [N, m] (1 = real element; masked
 * keys get weight exactly 0). One op: the products are OpenBLAS batched gemms, softmax and its
 * gradient native, instead of tfjs' softmax, mask and residual kernels and their gradients.
 */
export function attentionHeads(Qh: tf.Tensor3D, Kh: tf.Tensor3D, Vh: tf.Tensor3D, h: number, keyMask?: tf.Tensor2D | null): tf.Tensor3D {
  const [NB, n, d] = Qh.shape;
  const m = Kh.shape[1];
  const addon = fusedOps();
  if (!addon) {
    let S = tf.matMul(Qh, Kh, false, true);
    if (keyMask) {
      const bias = tf.scalar(1).sub(keyMask).mul(-1e9).reshape([NB / h, 1, 1, m]);
      S = S.reshape([NB / h, h, n, m]).add(bias).reshape([NB, n, m]);
    }
    return Qh.add(tf.matMul(tf.softmax(S, -1), Vh)) as tf.Tensor3D;
  }
  const inputs: Record<string, tf.Tensor> = { q: Qh, k: Kh, v: Vh };
  const forward = (save: (t: tf.Tensor[]) => void): tf.Tensor[] => {
    const O = hostTensor([NB, n, d]);
    const A = hostTensor([NB, n, m]);
    const a = hostView(A);
    const q = hostView(Qh);
    addon.bmm(q, hostView(Kh), a, NB, n, m, d, false, true, null, null);
    addon.softmaxRows(a, NB, n, m, keyMask ? hostView(keyMask) : null, h);
    const o = hostView(O);
    addon.bmm(a, hostView(Vh), o, NB, n, d, m, false, false, null, null);
    addon.ewise(3, o, q, null, NB * n * d);
    save([Qh, Kh, Vh, A]);
    return [O];
  };
  const backward = (dys: tf.Tensor[], saved: tf.Tensor[]): Record<string, tf.Tensor> => {
    const dQ = hostTensor([NB, n, d]);
    const dK = hostTensor([NB, m, d]);
    const dV = hostTensor([NB, m, d]);
    const [q, k, v, a] = saved.map((t) => hostView(t));
    const dO = hostView(dys[0]);
    const dA = scratch('attDA', NB * n * m);
    addon.bmm(dO, v, dA, NB, n, m, d, false, true, null, null); // dA = dO V^T
    addon.bmm(a, dO, hostView(dV), NB, m, d, n, true, false, null, null); // dV = A^T dO
    const dS = scratch('attDS', NB * n * m);
    addon.softmaxBwd(a, dA, dS, NB * n, m);
    const dq = hostView(dQ);
    addon.bmm(dS, k, dq, NB, n, d, m, false, false, null, null); // dQ = dO + dS K
    addon.ewise(3, dq, dO, null, NB * n * d);
    addon.bmm(dS, q, hostView(dK), NB, m, d, n, true, false, null, null); // dK = dS^T Q
    return { q: dQ, k: dK, v: dV };
  };
  return hostOp(inputs, forward, backward)[0] as tf.Tensor3D;
}

/** One parameter's Adam update for fusedAdamUpdate: its gradient, moments and bias-correction terms. */
export interface AdamUpdate {
  p: tf.Variable;
  g: tf.Tensor;
  m: tf.Variable;
  v: tf.Variable;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** sqrt(1 - beta2^t) */
  sqrtBc2: number;
}

interface RefCounting {
  refCount(dataId: object): number;
}

/**
 * PyTorch's Adam update of every parameter in one native call (m = b1 m + (1 - b1) g,
 * v = b2 v + (1 - b2) g^2, p -= stepSize m / (sqrt(v) / sqrtBc2 + eps), float32 in the order of
 * the tfjs composition, so the same bits), writing p, m and v in place. Returns false, doing
 * nothing, where the fused host ops are off: the caller then runs its tfjs composition.
 *
 * Tensors are immutable in tfjs and several may share one data buffer (a variable made from a
 * tensor, clones under the aliasing Identity), so a buffer is written in place only when the
 * variable is its sole owner; otherwise the variable gets a fresh buffer (copy on write).
 */
export function fusedAdamUpdate(items: readonly AdamUpdate[], beta1: number, beta2: number, eps: number): boolean {
  const addon = fusedOps();
  if (!addon || typeof addon.adam !== 'function') return false;
  if (items.length === 0) return true;
  const backend = tf.backend() as unknown as RefCounting;
  const shared = (t: tf.Tensor) => backend.refCount(t.dataId) !== 1;
  for (const it of items) {
    for (const t of [it.p, it.g, it.m, it.v]) {
      if (t.dtype !== 'float32') throw new Error(`fusedAdamUpdate: float32 tensors only, got ${t.dtype}`);
    }
    if (it.g.size !== it.p.size || it.m.size !== it.p.size || it.v.size !== it.p.size) {
      throw new Error(`fusedAdamUpdate: gradient or moments of ${it.p.name} differ in size from the parameter`);
    }
  }
  // Every allocation first (one may move the wasm heap and detach earlier views), views after.
  const outs = items.map((it) => (shared(it.p) || it.g.dataId === it.p.dataId ? hostTensor([...it.p.shape]) : null));
  for (const it of items) {
    for (const mv of [it.m, it.v]) {
      if (!shared(mv)) continue;
      const own = hostTensor([...mv.shape]);
      addon.ewise(2, hostView(own), hostView(mv), null, mv.size);
      mv.assign(own);
      own.dispose();
    }
  }
  const scal = new Float32Array(2 * items.length);
  items.forEach((it, i) => {
    scal[2 * i] = it.stepSize;
    scal[2 * i + 1] = it.sqrtBc2;
  });
  const ps = items.map((it) => hostView(it.p));
  addon.adam(
    ps,
    items.map((it) => hostView(it.g)),
    items.map((it) => hostView(it.m)),
    items.map((it) => hostView(it.v)),
    outs.map((o, i) => (o ? hostView(o) : ps[i])),
    scal,
    beta1, 1 - beta1, beta2, 1 - beta2, eps,
  );
  items.forEach((it, i) => {
    const o = outs[i];
    if (!o) return;
    it.p.assign(o);
    o.dispose();
  });
  return true;
}

/** What batchNormTrain returns: the normalised output and the batch statistics (biased variance). */
export interface BatchNormTrainResult {
  y: tf.Tensor;
  mean: Float32Array;
  variance: Float32Array;
}

// Per-channel loops over channels-last data: with few channels a loop per channel (strided) runs
// ~1.7x faster in V8 than a row loop with a short inner channel loop; with many, rows win.
const NARROW_CHANNELS = 16;

/**
 * Per-channel sums in float64 of v (M rows of C): of v, of (v - center)^2 when `center` is given, or
 * of v * (x - mean) when `times` is given.
 */
function channelSums(v: Float32Array, M: number, C: number, center: Float64Array | null, times: { x: Float32Array; mean: Float64Array } | null): Float64Array {
  const out = new Float64Array(C);
  const N = M * C;
  if (C <= NARROW_CHANNELS) {
    for (let c = 0; c < C; c++) {
      let acc = 0;
      if (times) {
        const { x } = times;
        const m = times.mean[c];
        for (let i = c; i < N; i += C) acc += v[i] * (x[i] - m);
      } else if (center) {
        const m = center[c];
        for (let i = c; i < N; i += C) {
          const d = v[i] - m;
          acc += d * d;
        }
      } else {
        for (let i = c; i < N; i += C) acc += v[i];
      }
      out[c] = acc;
    }
    return out;
  }
  if (times) {
    const { x, mean } = times;
    for (let i = 0; i < N; i += C) for (let c = 0; c < C; c++) out[c] += v[i + c] * (x[i + c] - mean[c]);
  } else if (center) {
    for (let i = 0; i < N; i += C) {
      for (let c = 0; c < C; c++) {
        const d = v[i + c] - center[c];
        out[c] += d * d;
      }
    }
  } else {
    for (let i = 0; i < N; i += C) for (let c = 0; c < C; c++) out[c] += v[i + c];
  }
  return out;
}

/** out = v * scale + shift per channel (M rows of C). */
function channelAffine(v: Float32Array, out: Float32Array, M: number, C: number, scale: Float64Array, shift: Float64Array): void {
  const N = M * C;
  if (C <= NARROW_CHANNELS) {
    for (let c = 0; c < C; c++) {
      const [sc, sh] = [scale[c], shift[c]];
      for (let i = c; i < N; i += C) out[i] = v[i] * sc + sh;
    }
    return;
  }
  for (let i = 0; i < N; i += C) for (let c = 0; c < C; c++) out[i + c] = v[i + c] * scale[c] + shift[c];
}

/**
 * Batch normalisation in training mode over every axis but the last (channels last, as NHWC):
 * y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and biased variance, forward
 * and backward as one host op each. The tfjs composition (moments, broadcasts and their gradients)
 * is ~60 small kernels per layer, which dominated a cell network's training step on wasm. Statistics
 * accumulate in float64. Returns null where the fused host ops are off: callers run the composition.
 */
export function batchNormTrain(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): BatchNormTrainResult | null {
  if (!fusedOps()) return null;
  const C = x.shape[x.rank - 1];
  const M = x.size / C;
  if (weight.size !== C || bias.size !== C) throw new Error(`batchNormTrain: weight/bias of ${weight.size}/${bias.size} for ${C} channels`);
  const mean = new Float32Array(C);
  const variance = new Float32Array(C);
  const invStd = new Float64Array(C);
  const forward = (save: (t: tf.Tensor[]) => void): tf.Tensor[] => {
    save([x, weight]);
    const y = hostTensor([...x.shape]);
    const xv = hostView(x);
    const m64 = channelSums(xv, M, C, null, null);
    for (let c = 0; c < C; c++) m64[c] /= M;
    const q = channelSums(xv, M, C, m64, null);
    const w = hostView(weight);
    const b = hostView(bias);
    const scale = new Float64Array(C);
    const shift = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      mean[c] = m64[c];
      variance[c] = q[c] / M;
      invStd[c] = 1 / Math.sqrt(q[c] / M + eps);
      scale[c] = w[c] * invStd[c];
      shift[c] = b[c] - m64[c] * scale[c];
    }
    channelAffine(xv, hostView(y), M, C, scale, shift);
    return [y];
  };
  const backward = (dys: tf.Tensor[], saved: tf.Tensor[]): Record<string, tf.Tensor> => {
    const [xs, ws] = saved;
    const dx = hostTensor([...xs.shape]);
    const dw = hostTensor([C]);
    const db = hostTensor([C]);
    const dy = hostView(dys[0]);
    const xv = hostView(xs);
    const m64 = Float64Array.from(mean);
    // dbias = sum dy; dweight = sum dy * xhat; dx = weight * invStd * (dy - dbias / M - xhat * dweight / M)
    const sdy = channelSums(dy, M, C, null, null);
    const sdyx = channelSums(dy, M, C, null, { x: xv, mean: m64 });
    const w = hostView(ws);
    // dx = k dy + k2 x + k0 per channel
    const k = new Float64Array(C);
    const k2 = new Float64Array(C);
    const k0 = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      sdyx[c] *= invStd[c];
      k[c] = w[c] * invStd[c];
      const a = (sdyx[c] * invStd[c]) / M;
      k2[c] = -k[c] * a;
      k0[c] = -k[c] * (sdy[c] / M) + k[c] * a * m64[c];
    }
    const dxv = hostView(dx);
    if (C <= NARROW_CHANNELS) {
      for (let c = 0; c < C; c++) {
        const [kc, k2c, k0c] = [k[c], k2[c], k0[c]];
        for (let i = c; i < M * C; i += C) dxv[i] = kc * dy[i] + k2c * xv[i] + k0c;
      }
    } else {
      for (let i = 0; i < M * C; i += C) for (let c = 0; c < C; c++) dxv[i + c] = k[c] * dy[i + c] + k2[c] * xv[i + c] + k0[c];
    }
    const dwv = hostView(dw);
    const dbv = hostView(db);
    for (let c = 0; c < C; c++) {
      dwv[c] = sdyx[c];
      dbv[c] = sdy[c];
    }
    return { x: dx, weight: dw, bias: db };
  };
  const [y] = hostOp({ x, weight, bias }, forward, backward);
  return { y, mean, variance };
}

/**
 * PyTorch's AvgPool2d(3, stride 1, padding 1, count_include_pad=False) on NHWC input: each output is
 * the mean of the in-image taps of its 3x3 window. Forward and backward as one host op each
 * (separable box sums); the tfjs composition (pad, pool, scale, divide and their gradients, with
 * wasm's slow AvgPoolGrad and Slice) cost a cell network more than its convolutions' backward pass.
 * Returns null where the fused host ops are off.
 */
export function boxMean3x3(x: tf.Tensor4D): tf.Tensor4D | null {
  if (!fusedOps()) return null;
  const [N, H, W, C] = x.shape;
  const invCount = new Float32Array(H * W);
  for (let i = 0; i < H; i++) {
    const ri = (i > 0 ? 1 : 0) + 1 + (i < H - 1 ? 1 : 0);
    for (let j = 0; j < W; j++) invCount[i * W + j] = 1 / (ri * ((j > 0 ? 1 : 0) + 1 + (j < W - 1 ? 1 : 0)));
  }
  // dst = (3x3 zero-padded box sum of src) * post (per pixel) where given: a horizontal pass per image
  // row into tmp, then a vertical one
  const row = W * C;
  const box = (src: Float32Array, dst: Float32Array, post: Float32Array | null) => {
    const tmp = scratch('boxMean3x3', H * row);
    for (let n = 0; n < N; n++) {
      const base = n * H * row;
      for (let i = 0; i < H; i++) {
        const r = base + i * row;
        const t = i * row;
        for (let j = 0; j < W; j++) {
          const o = j * C;
          for (let c = 0; c < C; c++) {
            let v = src[r + o + c];
            if (j > 0) v += src[r + o - C + c];
            if (j < W - 1) v += src[r + o + C + c];
            tmp[t + o + c] = v;
          }
        }
      }
      for (let i = 0; i < H; i++) {
        const t = i * row;
        const d = base + i * row;
        for (let j = 0; j < W; j++) {
          const scale = post ? post[i * W + j] : 1;
          const o = j * C;
          for (let c = 0; c < C; c++) {
            let v = tmp[t + o + c];
            if (i > 0) v += tmp[t - row + o + c];
            if (i < H - 1) v += tmp[t + row + o + c];
            dst[d + o + c] = v * scale;
          }
        }
      }
    }
  };
  const forward = (): tf.Tensor[] => {
    const y = hostTensor([N, H, W, C]);
    box(hostView(x), hostView(y), invCount);
    return [y];
  };
  // the box sum is symmetric: dx = box(dy / count)
  const backward = (dys: tf.Tensor[]): Record<string, tf.Tensor> => {
    const dx = hostTensor([N, H, W, C]);
    const dy = hostView(dys[0]);
    const scaled = scratch('boxMean3x3dy', N * H * row);
    for (let p = 0, k = 0; p < N * H * W; p++) {
      const s = invCount[p % (H * W)];
      for (let c = 0; c < C; c++, k++) scaled[k] = dy[k] * s;
    }
    box(scaled, hostView(dx), null);
    return { x: dx };
  };
  return hostOp({ x }, forward, backward)[0] as tf.Tensor4D;
}
