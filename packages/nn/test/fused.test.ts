import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@metad2a/core';
import { BatchNorm2d, Linear, attentionHeads, boxMean3x3, fusedOps, fusedOpsAvailable, initBackend, mergeHeads, multiLinear, residualReluLinear, splitHeads } from '../src/index.js';
import { linearRef } from './helpers.js';
// The fused ops need the OpenBLAS addon (CI builds it); without it, or with METAD2A_BLAS=off, the
// models use the tfjs compositions and there is nothing to compare.
const FUSED_AVAILABLE = fusedOpsAvailable();

// The host-side fused ops against the tfjs compositions they replace (METAD2A_FUSED=off), values
// and gradients, and against a Float64 reference for the forward pass.
beforeAll(async () => {
  await initBackend({ quiet: true });
});
afterEach(() => {
  delete process.env.METAD2A_FUSED;
});

function run(fused: boolean, fn: () => tf.Scalar, vars: tf.Variable[], x: tf.Tensor | null) {
  process.env.METAD2A_FUSED = fused ? 'on' : 'off';
  const xs: tf.Variable | null = x ? tf.variable(x) : null;
  const all = xs ? [...vars, xs] : vars;
  const { value, grads } = tf.variableGrads(() => fn.call(xs), all);
  const out = { loss: value.dataSync()[0], grads: all.map((v) => grads[v.name]?.dataSync().slice() ?? null) };
  tf.dispose([value, ...Object.values(grads)]);
  xs?.dispose();
  return out;
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rel: number) {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < b.length; i++) {
    if (Math.abs(a[i] - b[i]) > rel * Math.max(scale, 1e-12)) throw new Error(`[${i}] ${a[i]} vs ${b[i]} (scale ${scale})`);
  }
}

describe.runIf(FUSED_AVAILABLE)('fused host ops', () => {
  it('run here (the OpenBLAS addon is built and registered)', () => {
    expect(fusedOps()).not.toBeNull();
  });

  it.each([7, 24])('BatchNorm2d training mode (%i channels): output, input/weight/bias gradients and running statistics match tfjs', async (C) => {
    const rng = new Rng(5);
    const [N, H, W] = [6, 5, 4];
    const x = tf.tensor4d(rng.normalArray(N * H * W * C).map((v, i) => v * (1 + (i % C)) + (i % C) - 3), [N, H, W, C]);
    const target = tf.tensor4d(rng.normalArray(N * H * W * C), [N, H, W, C]);
    const results = [true, false].map((fused) => {
      const bn = new BatchNorm2d(C);
      bn.weight.assign(tf.tensor1d(rng.normalArray(C)));
      bn.bias.assign(tf.tensor1d(rng.normalArray(C)));
      // the same affine parameters for both modes
      const state = bn.stateDict();
      const r = { bn, state };
      return r;
    });
    results[1].bn.loadStateDict(results[0].state);
    const outs = results.map(({ bn }, i) => {
      const fused = i === 0;
      const y = (() => {
        process.env.METAD2A_FUSED = fused ? 'on' : 'off';
        return tf.tidy(() => bn.forward(x, true).dataSync().slice());
      })();
      const g = run(fused, function (this: tf.Variable) {
        return tf.sum(tf.mul(bn.forward(this as unknown as tf.Tensor4D, true), target)) as tf.Scalar;
      }, [bn.weight, bn.bias], x);
      return { y, g, rm: bn.runningMean.dataSync().slice(), rv: bn.runningVar.dataSync().slice() };
    });
    expectClose(outs[0].y, outs[1].y, 1e-5);
    outs[0].g.grads.forEach((gr, i) => expectClose(gr!, outs[1].g.grads[i]!, 1e-4));
    expectClose(outs[0].rm, outs[1].rm, 1e-6);
    expectClose(outs[0].rv, outs[1].rv, 1e-6);
    // what the fused op is for: a handful of kernels instead of the composition's dozens
    const kernels = async (mode: string) => {
      process.env.METAD2A_FUSED = mode;
      const p = await tf.profile(() => {
        const { grads } = tf.variableGrads(() => tf.sum(results[0].bn.forward(x, true)) as tf.Scalar, [results[0].bn.weight]);
        tf.dispose(Object.values(grads));
      });
      return p.kernels.length;
    };
    const [fusedKernels, composedKernels] = [await kernels('on'), await kernels('off')];
    expect(fusedKernels).toBeLessThan(composedKernels / 2);
    tf.dispose([x, target]);
    results.forEach(({ bn }) => bn.dispose());
  });

  it('boxMean3x3 (AvgPool2d 3x3, count_include_pad=False): values and input gradient match Float64 references', () => {
    const rng = new Rng(8);
    const [N, H, W, C] = [2, 5, 4, 3];
    const xa = rng.normalArray(N * H * W * C);
    const dya = rng.normalArray(N * H * W * C);
    const at = (n: number, i: number, j: number, c: number) => ((n * H + i) * W + j) * C + c;
    const taps = (i: number, j: number) => [-1, 0, 1].flatMap((di) => [-1, 0, 1].map((dj) => [i + di, j + dj])).filter(([p, q]) => p >= 0 && p < H && q >= 0 && q < W);
    const yRef = new Float64Array(xa.length);
    const dxRef = new Float64Array(xa.length);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const t = taps(i, j);
          for (let c = 0; c < C; c++) {
            yRef[at(n, i, j, c)] = t.reduce((s, [p, q]) => s + xa[at(n, p, q, c)], 0) / t.length;
            // y(i,j) spreads dy(i,j) / count equally over its taps
            for (const [p, q] of t) dxRef[at(n, p, q, c)] += dya[at(n, i, j, c)] / t.length;
          }
        }
      }
    }
    process.env.METAD2A_FUSED = 'on';
    const x = tf.tensor4d(xa, [N, H, W, C]);
    const dy = tf.tensor4d(dya, [N, H, W, C]);
    const y = boxMean3x3(x)!;
    expectClose(y.dataSync(), yRef, 1e-6);
    const dx = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(boxMean3x3(v as tf.Tensor4D)!, dy)))(x);
    expectClose(dx.dataSync(), dxRef, 1e-6);
    tf.dispose([x, dy, y, dx]);
    process.env.METAD2A_FUSED = 'off';
    const z = tf.zeros([1, 2, 2, 1]) as tf.Tensor4D;
    expect(boxMean3x3(z)).toBeNull();
    z.dispose();
  });

  it('BatchNorm2d training mode on an ill-conditioned batch (3 samples, mean 10 + c, sd 0.01) stays within 1e-6 of float64', () => {
    const rng = new Rng(2);
    const [M, C] = [3, 40];
    const xa = Float32Array.from({ length: M * C }, (_, i) => 10 + 0.01 * rng.normal() + (i % C));
    const truth = new Float64Array(M * C);
    for (let c = 0; c < C; c++) {
      let m = 0;
      for (let i = 0; i < M; i++) m += xa[i * C + c];
      m /= M;
      let v = 0;
      for (let i = 0; i < M; i++) v += (xa[i * C + c] - m) ** 2;
      v /= M;
      for (let i = 0; i < M; i++) truth[i * C + c] = (xa[i * C + c] - m) / Math.sqrt(v + 1e-5);
    }
    process.env.METAD2A_FUSED = 'on';
    const bn = new BatchNorm2d(C);
    const x = tf.tensor4d(xa, [M, 1, 1, C]);
    const y = bn.forward(x, true);
    expectClose(y.dataSync(), truth, 1e-6);
    tf.dispose([x, y]);
    bn.dispose();
  });

  it('multiLinear: values match a Float64 reference; gradients (weights, biases, input) match tfjs', () => {
    const rng = new Rng(1);
    const R = 37;
    const IN = 11;
    const layers = [new Linear(IN, 5, { rng }), new Linear(IN, 7, { rng }), new Linear(IN, 3, { bias: false, rng })];
    const scales = [1, 0.25, -2];
    const x = tf.tensor2d(rng.normalArray(R * IN), [R, IN]);
    const targets = layers.map((l) => tf.tensor2d(rng.normalArray(R * l.outFeatures), [R, l.outFeatures]));
    // forward against float64
    process.env.METAD2A_FUSED = 'on';
    const ys = multiLinear(x, layers, { scales });
    ys.forEach((y, i) => {
      const l = layers[i];
      const ref = linearRef(x.dataSync(), R, l.weight.dataSync(), l.bias?.dataSync() ?? null, IN, l.outFeatures).map((v) => v * scales[i]);
      expectClose(y.dataSync(), ref, 1e-6);
    });
    tf.dispose(ys);
    const vars = layers.flatMap((l) => l.parameters());
    for (const data of [false, true]) {
      const loss = function (this: tf.Variable | null) {
        const outs = multiLinear(this ?? x, layers, { scales, data });
        return tf.addN(outs.map((o, i) => o.sub(targets[i]).square().sum())) as tf.Scalar;
      };
      const f = run(true, loss, vars, data ? null : x);
      const c = run(false, loss, vars, data ? null : x);
      expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-5 * c.loss);
      expect(f.grads.length).toBe(c.grads.length);
      c.grads.forEach((g, i) => expectClose(f.grads[i]!, g!, 1e-5));
    }
    tf.dispose([x, ...targets]);
    layers.forEach((l) => l.dispose());
  });

  it('multiLinear on data rows of any rank keeps them for the backward pass (the caller may dispose them)', () => {
    const rng = new Rng(2);
    const l = new Linear(4, 3, { rng });
    const data = rng.normalArray(2 * 5 * 4);
    const grad = (early: boolean) => {
      process.env.METAD2A_FUSED = 'on';
      const X = tf.tensor3d(data, [2, 5, 4]);
      const { value, grads } = tf.variableGrads(() => {
        const [y] = multiLinear(X, [l], { data: true });
        if (early) X.dispose();
        return y.square().sum() as tf.Scalar;
      }, l.parameters());
      const g = grads[l.weight.name].dataSync().slice();
      tf.dispose([value, ...Object.values(grads)]);
      if (!X.isDisposed) X.dispose();
      return g;
    };
    expectClose(grad(true), grad(false), 0);
    l.dispose();
  });

  it('residualReluLinear: x + relu(x W^T + b), value and gradients as tfjs', () => {
    const rng = new Rng(3);
    const D = 9;
    const R = 41;
    const l = new Linear(D, D, { rng });
    const x = tf.tensor2d(rng.normalArray(R * D), [R, D]);
    const t = tf.tensor2d(rng.normalArray(R * D), [R, D]);
    const loss = function (this: tf.Variable | null) {
      return residualReluLinear((this ?? x) as tf.Tensor2D, l).sub(t).square().sum() as tf.Scalar;
    };
    const f = run(true, loss, l.parameters(), x);
    const c = run(false, loss, l.parameters(), x);
    expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-5 * c.loss);
    c.grads.forEach((g, i) => expectClose(f.grads[i]!, g!, 1e-5));
    tf.dispose([x, t]);
    l.dispose();
  });

  it('splitHeads / mergeHeads: the reshape-transpose layout, inverse of each other, gradients routed back', () => {
    const rng = new Rng(5);
    const [N, rows, h, d] = [3, 4, 2, 5];
    const x = tf.tensor2d(rng.normalArray(N * rows * h * d), [N * rows, h * d]);
    const w = tf.tensor3d(rng.normalArray(N * h * rows * d), [N * h, rows, d]);
    process.env.METAD2A_FUSED = 'on';
    const s = splitHeads(x, N, rows, h, d);
    const ref = x.reshape([N, rows, h, d]).transpose([0, 2, 1, 3]).reshape([N * h, rows, d]);
    expectClose(s.dataSync(), ref.dataSync(), 0);
    expectClose(mergeHeads(s, N, rows, h, d).dataSync(), x.dataSync(), 0);
    const loss = function (this: tf.Variable | null) {
      const m = mergeHeads(splitHeads(this ?? x, N, rows, h, d).mul(w), N, rows, h, d);
      return m.square().sum() as tf.Scalar;
    };
    const f = run(true, loss, [], x);
    const c = run(false, loss, [], x);
    expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-5 * c.loss);
    expectClose(f.grads[0]!, c.grads[0]!, 1e-6);
    tf.dispose([x, w, s, ref]);
  });

  it('attentionHeads: Q + softmax(Q K^T) V with a key mask, value and gradients as tfjs', () => {
    const rng = new Rng(6);
    const [N, h, n, m, d] = [3, 2, 4, 4, 5];
    const mk = (rows: number) => tf.tensor3d(rng.normalArray(N * h * rows * d), [N * h, rows, d]);
    const [q, k, v] = [mk(n), mk(m), mk(m)];
    const t = mk(n);
    const mask = tf.tensor2d([1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0], [N, m]); // 4, 2 and 1 real keys
    for (const withMask of [false, true]) {
      const loss = function (this: tf.Variable | null) {
        return attentionHeads((this ?? q) as tf.Tensor3D, k, v, h, withMask ? mask : null).sub(t).square().sum() as tf.Scalar;
      };
      const f = run(true, loss, [], q);
      const c = run(false, loss, [], q);
      expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-5 * c.loss);
      expectClose(f.grads[0]!, c.grads[0]!, 1e-5);
      // gradients of K and V through the same op
      const kv = [tf.variable(k), tf.variable(v)];
      const grad = (mode: string) => {
        process.env.METAD2A_FUSED = mode;
        const { value, grads } = tf.variableGrads(() => attentionHeads(q, kv[0] as tf.Tensor3D, kv[1] as tf.Tensor3D, h, withMask ? mask : null).sub(t).square().sum() as tf.Scalar, kv);
        const out = kv.map((x) => grads[x.name].dataSync().slice());
        tf.dispose([value, ...Object.values(grads)]);
        return out;
      };
      const gf = grad('on');
      const gc = grad('off');
      gc.forEach((g, i) => expectClose(gf[i], g, 1e-5));
      tf.dispose(kv);
    }
    tf.dispose([q, k, v, t, mask]);
  });

  it('leak no tensors with or without a tape', () => {
    const rng = new Rng(4);
    const l = new Linear(6, 6, { rng });
    const x = tf.tensor2d(rng.normalArray(60), [10, 6]);
    process.env.METAD2A_FUSED = 'on';
    const before = tf.memory().numTensors;
    tf.tidy(() => residualReluLinear(multiLinear(x, [l])[0], l).dataSync());
    const { value, grads } = tf.variableGrads(() => residualReluLinear(multiLinear(x, [l, l])[1], l).sum() as tf.Scalar, l.parameters());
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    l.dispose();
  });
});
