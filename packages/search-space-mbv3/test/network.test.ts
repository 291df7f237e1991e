import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, Rng, ShapeError } from '@metad2a/core';
import { initBackend, type StateDict } from '@metad2a/nn';
import { OfaSubnet, hSwish, ofaCost, type OfaConfig } from '../src/index.js';

// cpu backend: stock tfjs-backend-wasm has no Conv2DBackpropFilter / depthwise backprop kernels
// until the kernels-blas package registers them; switch to wasm once that lands.
beforeAll(async () => {
  await initBackend({ force: 'cpu', quiet: true });
});

const RANDOM0: OfaConfig = {
  ks: [7, 5, 5, 3, 3, 3, 3, 3, 3, 7, 5, 7, 5, 5, 7, 7, 5, 5, 5, 7],
  e: [3, 6, 6, 3, 4, 6, 4, 3, 6, 6, 6, 3, 3, 6, 3, 4, 3, 3, 4, 4],
  d: [3, 2, 2, 2, 2],
  r: 208,
};
const SMALLEST: OfaConfig = { ks: Array(20).fill(3), e: Array(20).fill(3), d: Array(5).fill(2) };

function randomInput(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor4d(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

describe('OfaSubnet', () => {
  it('has the analytic parameter count and once-for-all parameter names', () => {
    const net = new OfaSubnet(RANDOM0, { resolution: 64, numClasses: 10, rng: new Rng(1) });
    // independent python count (see cost.test.ts): 2,550,762 for random0 with a 10-way head
    expect(net.numTrainableParameters()).toBe(2550762);
    expect(net.numTrainableParameters()).toBe(ofaCost(RANDOM0, { resolution: 64, numClasses: 10 }).params);
    const shapes = new Map(net.namedParameters().map(([n, v]) => [n, v.shape]));
    expect(shapes.get('first_conv.conv.weight')).toEqual([3, 3, 3, 16]);
    expect(shapes.get('first_conv.bn.running_var')).toEqual([16]);
    expect(shapes.get('blocks.0.conv.depth_conv.conv.weight')).toEqual([3, 3, 16, 1]);
    expect(shapes.has('blocks.0.conv.inverted_bottleneck.conv.weight')).toBe(false);
    // blocks.1 = stage 1 slot 0: 16 -> 48 (e3), k7
    expect(shapes.get('blocks.1.conv.inverted_bottleneck.conv.weight')).toEqual([1, 1, 16, 48]);
    expect(shapes.get('blocks.1.conv.depth_conv.conv.weight')).toEqual([7, 7, 48, 1]);
    // blocks.4 = stage 2 slot 0 (SE): 24 -> mid 96 (e4) -> SE 24
    expect(shapes.get('blocks.4.conv.depth_conv.se.fc.reduce.weight')).toEqual([1, 1, 96, 24]);
    expect(shapes.get('blocks.4.conv.depth_conv.se.fc.expand.bias')).toEqual([96]);
    expect(shapes.get('blocks.4.conv.point_linear.conv.weight')).toEqual([1, 1, 96, 40]);
    // first block + 3 + 2 + 2 + 2 + 2 active slots = blocks 0..11
    expect(shapes.get('blocks.11.conv.point_linear.bn.weight')).toEqual([160]);
    expect(shapes.has('blocks.12.conv.point_linear.bn.weight')).toBe(false);
    expect(shapes.get('final_expand_layer.conv.weight')).toEqual([1, 1, 160, 960]);
    expect(shapes.get('feature_mix_layer.conv.weight')).toEqual([1, 1, 960, 1280]);
    expect(shapes.has('feature_mix_layer.bn.weight')).toBe(false);
    expect(shapes.get('classifier.linear.weight')).toEqual([10, 1280]);
    net.dispose();
    for (const [cfg, opts] of [
      [SMALLEST, { numClasses: 1000 }],
      [SMALLEST, { widthMult: 1.2, numClasses: 37 }],
    ] as const) {
      const n = new OfaSubnet(cfg, { ...opts, rng: new Rng(2) });
      expect(n.numTrainableParameters()).toBe(ofaCost(cfg, opts).params);
      n.dispose();
    }
    expect(() => new OfaSubnet(SMALLEST, { dropout: 1 })).toThrow(ConfigError);
  });

  it('runs forward and backward on a batch of 2 at 32 px', () => {
    const before = tf.memory().numTensors;
    const net = new OfaSubnet(RANDOM0, { resolution: 32, numClasses: 10, rng: new Rng(3) });
    const paramTensors = tf.memory().numTensors - before;
    const x = randomInput([2, 32, 32, 3], 4);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([3, 7], 'int32'), 10));
    const vars = net.trainableParameters();
    const meanBefore = Float32Array.from(net.namedParameters().find(([n]) => n === 'blocks.2.conv.depth_conv.bn.running_mean')![1].dataSync());
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(labels, net.forward(x, true)) as tf.Scalar, vars);
    const loss = value.dataSync()[0];
    // random init with 10 classes: the loss sits near ln 10
    expect(Number.isFinite(loss)).toBe(true);
    expect(loss).toBeGreaterThan(0.5);
    expect(loss).toBeLessThan(10);
    // every trainable parameter gets a finite gradient, and all a non-zero one but the biases of the
    // point_linear BNs: a per-channel shift of the residual stream only reaches later 1x1 convs, each
    // followed by a BN that removes it, so their gradient is zero in exact arithmetic (rounding noise
    // in the tfjs composition, ~1e-6; exactly 0 from the fused BN op)
    expect(Object.keys(grads).length).toBe(vars.length);
    const names = new Map(net.namedParameters().map(([n, v]) => [v, n]));
    const dead: string[] = [];
    for (const v of vars) {
      const g = grads[v.name].dataSync();
      expect(g.every((u) => Number.isFinite(u))).toBe(true);
      if (g.every((u) => Math.abs(u) < 1e-4)) dead.push(names.get(v)!);
    }
    expect(dead.filter((n) => !/point_linear\.bn\.bias$/.test(n))).toEqual([]);
    // training mode updated the BN running statistics
    const meanAfter = net.namedParameters().find(([n]) => n === 'blocks.2.conv.depth_conv.bn.running_mean')![1].dataSync();
    expect(Array.from(meanAfter)).not.toEqual(Array.from(meanBefore));
    const opt = tf.train.sgd(0.05);
    opt.applyGradients(grads);
    opt.dispose();
    const logits = net.forward(x, false);
    expect(logits.shape).toEqual([2, 10]);
    // eval mode is deterministic (no dropout, running statistics)
    const again = net.forward(x, false);
    expect(Array.from(again.dataSync())).toEqual(Array.from(logits.dataSync()));
    tf.dispose([value, logits, again, x, labels, ...Object.values(grads)]);
    net.dispose();
    // nothing but the parameters was kept, and those are gone now
    expect(paramTensors).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('checks the input shape and computes h_swish', () => {
    const net = new OfaSubnet(SMALLEST, { resolution: 32, numClasses: 4, rng: new Rng(5) });
    const bad = tf.zeros([1, 64, 64, 3]) as tf.Tensor4D;
    expect(() => net.forward(bad, false)).toThrow(ShapeError);
    const y = hSwish(tf.tensor1d([-4, -3, -1, 0, 1, 3, 5]));
    // x * min(max(x + 3, 0), 6) / 6, by hand
    const want = [0, 0, -1 / 3, 0, 2 / 3, 3, 5];
    Array.from(y.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i], 6));
    tf.dispose([bad, y]);
    net.dispose();
  });
});

/** Fan-in of a tfjs conv kernel [kh, kw, in, out|1] or a linear weight [out, in]. */
const fanIn = (shape: number[]) => (shape.length === 2 ? shape[1] : shape[3] === 1 ? shape[0] * shape[1] : shape[0] * shape[1] * shape[2]);

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

describe('OfaSubnet vs an independent numpy forward pass', () => {
  it.skipIf(!hasNumpy)('gives the same logits in eval and training mode (random weights and BN statistics)', () => {
    const cfg: OfaConfig = { ...RANDOM0, d: [2, 3, 2, 4, 2] };
    const r = 32;
    const net = new OfaSubnet(cfg, { resolution: r, numClasses: 5, dropout: 0, widthMult: 1.2, rng: new Rng(8) });
    // Random values everywhere (also BN affine/statistics and biases, which init leaves trivial).
    const rng = new Rng(9);
    const state: StateDict = new Map();
    for (const [name, v] of net.namedParameters()) {
      const n = v.size;
      const data = Float32Array.from({ length: n }, () =>
        name.endsWith('running_var') ? 0.5 + rng.next() : name.endsWith('.weight') && v.rank === 1 ? 0.8 + 0.4 * rng.next() : name.endsWith('.weight') ? rng.normal() * Math.sqrt(2 / fanIn(v.shape)) : 0.2 * rng.normal(),
      );
      state.set(name, { shape: [...v.shape], data });
    }
    net.loadStateDict(state);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ofa-np-'));
    try {
      const tensors: Record<string, [number[], number]> = {};
      const parts: Float32Array[] = [];
      let offset = 0;
      for (const [name, t] of state) {
        tensors[name] = [t.shape, offset];
        parts.push(t.data);
        offset += t.data.length;
      }
      const blob = new Float32Array(offset);
      let o = 0;
      for (const p of parts) {
        blob.set(p, o);
        o += p.length;
      }
      fs.writeFileSync(path.join(dir, 'model.f32'), Buffer.from(blob.buffer));
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ config: cfg, resolution: r, num_classes: 5, width_mult: 1.2, tensors }));
      const x = randomInput([3, r, r, 3], 10);
      fs.writeFileSync(path.join(dir, 'input.f32'), Buffer.from((x.dataSync() as Float32Array).slice().buffer));
      const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'numpy_reference.py');
      const ref = JSON.parse(execFileSync('python3', [script, dir], { encoding: 'utf8' })) as { eval: number[][]; train: number[][] };
      const evalLogits = net.forward(x, false);
      const trainLogits = net.forward(x, true);
      const compare = (got: tf.Tensor2D, want: number[][]) => {
        const g = got.arraySync();
        let worst = 0;
        want.forEach((row, b) => row.forEach((v, c) => (worst = Math.max(worst, Math.abs(v - g[b][c]) / (1 + Math.abs(v))))));
        return worst;
      };
      expect(compare(evalLogits, ref.eval)).toBeLessThan(1e-4);
      expect(compare(trainLogits, ref.train)).toBeLessThan(1e-4);
      // the two modes really differ here
      expect(Math.abs(ref.eval[0][0] - ref.train[0][0])).toBeGreaterThan(1e-3);
      tf.dispose([x, evalLogits, trainLogits]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      net.dispose();
    }
  });
});
