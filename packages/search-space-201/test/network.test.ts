import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { avgPool3x3, Conv2d, Nb201Cell, Nb201Network, nb201Cost, nb201Space, parseNb201, type Nb201Arch } from '../src/index.js';

// cpu backend: stock wasm has no Conv2DBackpropFilter kernel. With @metad2a/kernels-blas active
// (its addon built) wasm works too: this file passed with force 'wasm' on 2026-11-29.
beforeAll(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

const ALL_CONV3: Nb201Arch = Array(6).fill('nor_conv_3x3');
const BEST = parseNb201('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|');

function randomInput(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor4d(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

describe('Nb201Network', () => {
  it('has the analytic parameter count and PyTorch names (C=16, N=5, CIFAR-10)', () => {
    const net = new Nb201Network(ALL_CONV3, { rng: new Rng(1) });
    expect(net.numTrainableParameters()).toBe(1531546);
    const shapes = new Map(net.namedParameters().map(([n, v]) => [n, v.shape]));
    expect(shapes.get('stem.0.weight')).toEqual([3, 3, 3, 16]);
    expect(shapes.get('stem.1.running_var')).toEqual([16]);
    expect(shapes.get('cells.0.layers.5.op.1.weight')).toEqual([3, 3, 16, 16]);
    expect(shapes.get('cells.5.conv_a.op.1.weight')).toEqual([3, 3, 16, 32]);
    expect(shapes.get('cells.5.downsample.1.weight')).toEqual([1, 1, 16, 32]);
    expect(shapes.get('cells.11.conv_b.op.2.weight')).toEqual([64]);
    expect(shapes.get('cells.16.layers.0.op.2.running_mean')).toEqual([64]);
    expect(shapes.get('lastact.0.bias')).toEqual([64]);
    expect(shapes.get('classifier.weight')).toEqual([10, 64]);
    expect(shapes.has('cells.17.layers.0.op.1.weight')).toBe(false);
    net.dispose();
    const rng = new Rng(5);
    for (let i = 0; i < 4; i++) {
      const arch = nb201Space.sample(rng);
      const m = new Nb201Network(arch, { numClasses: 100, rng });
      expect(m.numTrainableParameters()).toBe(nb201Cost(arch, { numClasses: 100 }).paramCount);
      m.dispose();
    }
  });

  it('runs the benchmark-size network forward on a batch of 2', () => {
    const net = new Nb201Network(BEST, { rng: new Rng(2) });
    const x = randomInput([2, 32, 32, 3], 3);
    const y = net.forward(x, false);
    expect(y.shape).toEqual([2, 10]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, y]);
    net.dispose();
  });

  it('trains: forward and backward on a small batch with checked shapes; SGD lowers the loss', () => {
    // Second cell: out = skip(x); nodes 1 and 2 reach the output only through none edges, so the
    // 1x1 conv (edge 0), the pool (edge 1) and the 3x3 conv (edge 2) are dead.
    for (const s of [BEST, parseNb201('|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|')]) {
      const net = new Nb201Network(s, { C: 4, N: 1, inputSize: 8, numClasses: 3, rng: new Rng(4) });
      const x = randomInput([4, 8, 8, 3], 5);
      const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 2], 'int32'), 3);
      const loss = () => tf.losses.softmaxCrossEntropy(labels, net.forward(x, true)) as tf.Scalar;
      const vars = net.trainableParameters();
      const { value, grads } = tf.variableGrads(loss, vars);
      const names = new Map(net.namedParameters().map(([n, v]) => [v.name, n]));
      const withGrad = vars.filter((v) => grads[v.name]);
      for (const v of withGrad) {
        expect(grads[v.name].shape, names.get(v.name)).toEqual(v.shape);
        expect(Array.from(grads[v.name].dataSync()).every(Number.isFinite)).toBe(true);
      }
      // Only parameters on edges that cannot reach the cell output go without a gradient.
      const missing = vars.filter((v) => !grads[v.name]).map((v) => names.get(v.name)!);
      expect(missing.every((n) => /^cells\.(0|2|4)\.layers\.(0|2)\.op\./.test(n)), missing.join(',')).toBe(true);
      expect(missing.length).toBe(s === BEST ? 0 : 3 * 2 * 3);
      expect(net.liveParameters().map((v) => v.name)).toEqual(withGrad.map((v) => v.name));
      expect(tf.sum(tf.abs(grads[withGrad[0].name])).dataSync()[0]).toBeGreaterThan(0);
      const before = value.dataSync()[0];
      const opt = tf.train.sgd(0.1);
      for (let i = 0; i < 5; i++) opt.minimize(loss, false, withGrad);
      const after = tf.tidy(() => loss().dataSync()[0]);
      expect(after).toBeLessThan(before);
      const logits = net.forward(x, false);
      expect(logits.shape).toEqual([4, 3]);
      tf.dispose([x, labels, value, logits, ...Object.values(grads)]);
      opt.dispose();
      net.dispose();
    }
  });
});

describe('building blocks', () => {
  it('wires the cell as NB201 does: node j sums op(node i) over its inputs', () => {
    const x = randomInput([1, 4, 4, 2], 11);
    const run = (s: string) => {
      const cell = new Nb201Cell(parseNb201(s), 2, new Rng(0));
      return cell.forward(x, false);
    };
    // node1 = x, node2 = x + x, node3 = x + x + 2x = 4x
    const allSkip = run('|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|');
    expect(tf.max(tf.abs(allSkip.sub(x.mul(4)))).dataSync()[0]).toBeLessThan(1e-6);
    const none = run('|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|none~2|');
    expect(Array.from(none.dataSync()).every((v) => v === 0)).toBe(true);
    // out = avgpool(node2) with node2 = x; the corner averages its 4 in-image neighbours only (count_include_pad=False).
    const pooled = run('|none~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|').arraySync() as number[][][][];
    const xa = x.arraySync() as number[][][][];
    const corner = (xa[0][0][0][1] + xa[0][0][1][1] + xa[0][1][0][1] + xa[0][1][1][1]) / 4;
    expect(pooled[0][0][0][1]).toBeCloseTo(corner, 5);
    const centre = [0, 1, 2].flatMap((i) => [0, 1, 2].map((j) => xa[0][i][j][0])).reduce((a, b) => a + b, 0) / 9;
    expect(pooled[0][1][1][0]).toBeCloseTo(centre, 5);
  });

  it('avg-pools 3x3 without counting padding, with a gradient that matches finite differences', () => {
    const x = randomInput([2, 5, 5, 3], 21);
    const w = randomInput([2, 5, 5, 3], 22);
    const f = (a: tf.Tensor4D) => tf.sum(avgPool3x3(a).mul(w)) as tf.Scalar;
    const xa = x.arraySync() as number[][][][];
    const y = avgPool3x3(x).arraySync() as number[][][][];
    // Edge pixel (0, 2): 2 rows x 3 columns in the image.
    let s = 0;
    for (const r of [0, 1]) for (const c of [1, 2, 3]) s += xa[1][r][c][2];
    expect(y[1][0][2][2]).toBeCloseTo(s / 6, 5);
    // The function is linear, so a central difference is exact up to float32 rounding.
    const d = randomInput([2, 5, 5, 3], 23);
    const analytic = tf.sum(tf.grad((a: tf.Tensor) => f(a as tf.Tensor4D))(x).mul(d)).dataSync()[0];
    const e = 0.5;
    const numeric = (f(x.add(d.mul(e)) as tf.Tensor4D).dataSync()[0] - f(x.sub(d.mul(e)) as tf.Tensor4D).dataSync()[0]) / (2 * e);
    expect(Math.abs(analytic - numeric)).toBeLessThan(1e-3 * Math.max(1, Math.abs(numeric)));
  });

  it('pads stride-2 convs symmetrically like PyTorch', () => {
    const conv = new Conv2d(2, 3, 3, 2, 1, new Rng(3));
    const x = randomInput([1, 6, 6, 2], 12);
    const y = conv.forward(x).arraySync() as number[][][][];
    const xa = x.arraySync() as number[][][][];
    const w = conv.weight.arraySync() as number[][][][];
    // Naive PyTorch semantics: out[i][j] = sum over taps at (2i-1+ki, 2j-1+kj), zero outside.
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++)
        for (let o = 0; o < 3; o++) {
          let s = 0;
          for (let ki = 0; ki < 3; ki++)
            for (let kj = 0; kj < 3; kj++) {
              const r = 2 * i - 1 + ki;
              const c = 2 * j - 1 + kj;
              if (r < 0 || c < 0 || r >= 6 || c >= 6) continue;
              for (let ci = 0; ci < 2; ci++) s += xa[0][r][c][ci] * w[ki][kj][ci][o];
            }
          expect(y[0][i][j][o]).toBeCloseTo(s, 4);
        }
  });
});
