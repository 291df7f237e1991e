import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, Rng, ShapeError } from '@metad2a/core';
import { BatchNorm2d, GRUCell, LayerNorm, Linear, Module, ReLU, Sequential, Sigmoid, Tanh, initBackend, kaimingUniformBound, linearBound, manualSeed, readF32Bundle, selectPrefix, type F32Bundle } from '../src/index.js';
import { PARITY_MANIFEST, gruRef, linearRef, maxAbsDiff } from './helpers.js';

let bundle: F32Bundle;
beforeAll(async () => {
  await initBackend({ quiet: true });
  bundle = readF32Bundle(PARITY_MANIFEST);
});

const gen = (n: string) => bundle.get(`generator_state/${n}`);

describe('Linear against the parity fixture', () => {
  it('set_fc.0 (512 -> 56) on real dataset features matches a Float64 reference to 1e-5', () => {
    const lin = new Linear(512, 56);
    lin.loadStateDict(selectPrefix(bundle.group('generator_state'), 'set_fc.0.'));
    const X = bundle.get('generator_case/input_X'); // [3, 200, 512]
    const rows = 16;
    const x = X.data.subarray(0, rows * 512);
    const ref = linearRef(x, rows, gen('set_fc.0.weight').data, gen('set_fc.0.bias').data, 512, 56);
    const y = tf.tidy(() => lin.forward(tf.tensor2d(x, [rows, 512])).dataSync());
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    // rank-3 input keeps its leading axes
    const y3 = tf.tidy(() => lin.forward(tf.tensor3d(x, [2, 8, 512])));
    expect(y3.shape).toEqual([2, 8, 56]);
    expect(maxAbsDiff(y3.dataSync(), ref)).toBeLessThan(1e-5);
    y3.dispose();
    lin.dispose();
  });

  it('bias-free Linear (decoding_mapper.0) has only a weight and matches x W^T', () => {
    const lin = new Linear(64, 56, { bias: false });
    expect(lin.namedParameters().map(([n]) => n)).toEqual(['weight']);
    lin.loadStateDict(selectPrefix(bundle.group('generator_state'), 'decoding_mapper.0.'));
    const rng = new Rng(3);
    const x = rng.normalArray(5 * 64);
    const ref = linearRef(x, 5, gen('decoding_mapper.0.weight').data, null, 64, 56);
    const y = tf.tidy(() => lin.forward(tf.tensor2d(x, [5, 64])).dataSync());
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    lin.dispose();
  });
});

describe('GRUCell against the parity fixture', () => {
  const H = 56;
  const I = 7;
  const weights = (prefix: string) => ({ wih: gen(`${prefix}.weight_ih`).data, whh: gen(`${prefix}.weight_hh`).data, bih: gen(`${prefix}.bias_ih`).data, bhh: gen(`${prefix}.bias_hh`).data });

  it('grue_forward: one-hot and dense inputs, 8 unrolled steps, r/z/n order, to 1e-5', () => {
    const cell = new GRUCell(I, H);
    const { unexpected } = cell.loadStateDict(bundle.group('generator_state'), { strict: false });
    expect(unexpected.length).toBeGreaterThan(0);
    cell.loadStateDict(selectPrefix(bundle.group('generator_state'), 'grue_forward.'));
    const p = weights('grue_forward');
    const B = 9;
    const rng = new Rng(11);
    let h: Float64Array | Float32Array = rng.normalArray(B * H, 0.7);
    let ht = tf.tensor2d(h, [B, H]);
    for (let step = 0; step < 8; step++) {
      const x = new Float32Array(B * I);
      for (let b = 0; b < 7; b++) x[b * I + ((b + step) % I)] = 1; // one-hot node types, as the decoder feeds
      for (let i = 7 * I; i < B * I; i++) x[i] = rng.normal(0, 1); // two dense rows
      const ref = gruRef(x, h, B, I, H, p);
      const next = tf.tidy(() => cell.forward(tf.tensor2d(x, [B, I]), ht));
      expect(maxAbsDiff(next.dataSync(), ref)).toBeLessThan(1e-5);
      // the precomputed-gates path is the same function
      const viaGates = tf.tidy(() => cell.forwardFromInputGates(cell.inputGates(tf.tensor2d(x, [B, I])), ht));
      expect(maxAbsDiff(viaGates.dataSync(), next.dataSync())).toBeLessThan(1e-6);
      viaGates.dispose();
      ht.dispose();
      ht = next;
      h = Float64Array.from(ref); // keep the reference on its own trajectory
    }
    ht.dispose();
    cell.dispose();
  });

  it('grud (decoder GRU) from a zero state', () => {
    const cell = new GRUCell(I, H);
    cell.loadStateDict(selectPrefix(bundle.group('generator_state'), 'grud.'));
    const B = 7;
    const x = new Float32Array(B * I);
    for (let b = 0; b < B; b++) x[b * I + b] = 1;
    const ref = gruRef(x, new Float64Array(B * H), B, I, H, weights('grud'));
    const y = tf.tidy(() => cell.forward(tf.tensor2d(x, [B, I]), tf.zeros([B, H]) as tf.Tensor2D).dataSync());
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    const y0 = tf.tidy(() => cell.forward(tf.tensor2d(x, [B, I])).dataSync()); // h omitted = zeros
    expect(maxAbsDiff(y0, ref)).toBeLessThan(1e-5);
    cell.dispose();
  });
});

describe('LayerNorm, activations, Sequential', () => {
  it('LayerNorm normalises the last axis with biased variance and eps 1e-5, then scales and shifts', () => {
    const D = 6;
    const ln = new LayerNorm(D);
    expect(Array.from(ln.weight.dataSync())).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(ln.bias.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
    const w = Float32Array.from([0.5, 1, 1.5, -1, 2, 0.25]);
    const b = Float32Array.from([0, 0.1, -0.2, 0.3, 0, 1]);
    ln.loadStateDict(new Map([['weight', { shape: [D], data: w }], ['bias', { shape: [D], data: b }]]));
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 0.001, 0.002, 0.001, 0.0, 0.003, 0.002]);
    const ref: number[] = [];
    for (let r = 0; r < 2; r++) {
      const row = Array.from(x.subarray(r * D, (r + 1) * D));
      const mu = row.reduce((s, v) => s + v, 0) / D;
      const vr = row.reduce((s, v) => s + (v - mu) ** 2, 0) / D;
      row.forEach((v, i) => ref.push(((v - mu) / Math.sqrt(vr + 1e-5)) * w[i] + b[i]));
    }
    const y = tf.tidy(() => ln.forward(tf.tensor2d(x, [2, D])).dataSync());
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    ln.dispose();
  });

  it('Sequential names layers 0, 1, 2 like torch and reproduces add_vertex (Linear, ReLU, Linear)', () => {
    const seq = new Sequential(new Linear(56, 112), new ReLU(), new Linear(112, 7));
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    seq.loadStateDict(selectPrefix(bundle.group('generator_state'), 'add_vertex.'));
    const rng = new Rng(5);
    const x = rng.normalArray(4 * 56);
    const h = linearRef(x, 4, gen('add_vertex.0.weight').data, gen('add_vertex.0.bias').data, 56, 112).map((v) => Math.max(0, v));
    const ref = linearRef(h, 4, gen('add_vertex.2.weight').data, gen('add_vertex.2.bias').data, 112, 7);
    const y = tf.tidy(() => seq.forward(tf.tensor2d(x, [4, 56])).dataSync());
    expect(maxAbsDiff(y, ref)).toBeLessThan(1e-5);
    seq.dispose();
  });

  it('ReLU, Sigmoid and Tanh match their definitions', () => {
    const xs = [-3, -0.5, 0, 0.25, 4];
    const t = tf.tensor1d(xs);
    expect(maxAbsDiff(new ReLU().forward(t).dataSync(), xs.map((v) => Math.max(0, v)))).toBe(0);
    expect(maxAbsDiff(new Sigmoid().forward(t).dataSync(), xs.map((v) => 1 / (1 + Math.exp(-v))))).toBeLessThan(1e-6);
    expect(maxAbsDiff(new Tanh().forward(t).dataSync(), xs.map(Math.tanh))).toBeLessThan(1e-6);
  });
});

/** Kolmogorov-Smirnov distance of samples from U(-b, b). */
function ksUniform(v: Float32Array, b: number): number {
  const s = Float64Array.from(v).sort();
  let d = 0;
  for (let i = 0; i < s.length; i++) {
    const F = (s[i] + b) / (2 * b);
    d = Math.max(d, Math.abs(F - i / s.length), Math.abs(F - (i + 1) / s.length));
  }
  return d;
}

function checkUniform(v: Float32Array, b: number): void {
  const n = v.length;
  let mx = 0;
  let mean = 0;
  for (const x of v) (mx = Math.max(mx, Math.abs(x))), (mean += x);
  mean /= n;
  const variance = v.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
  expect(mx).toBeLessThanOrEqual(b);
  expect(mx).toBeGreaterThan(b * (1 - 20 / n)); // the support really reaches the bound
  expect(Math.abs(mean)).toBeLessThan((5 * b) / Math.sqrt(3 * n)); // 5 sigma
  expect(Math.abs(variance / (b * b / 3) - 1)).toBeLessThan(10 / Math.sqrt(n)); // var of U(-b,b) is b^2/3
  expect(ksUniform(v, b)).toBeLessThan(1.95 / Math.sqrt(n)); // KS critical value at alpha = 0.001
}

describe('PyTorch default initialisers', () => {
  it('kaiming_uniform(a = sqrt 5) bound equals 1/sqrt(fan_in)', () => {
    for (const f of [1, 7, 56, 512]) expect(kaimingUniformBound(f)).toBeCloseTo(1 / Math.sqrt(f), 12);
    expect(linearBound(400)).toBe(0.05);
  });

  it('Linear weight and bias are U(-1/sqrt(in), 1/sqrt(in)) with shape [out, in]', () => {
    const lin = new Linear(400, 300, { rng: new Rng(1) });
    expect(lin.weight.shape).toEqual([300, 400]);
    checkUniform(lin.weight.dataSync() as Float32Array, 0.05);
    const wide = new Linear(100, 4000, { rng: new Rng(2) });
    checkUniform(wide.bias!.dataSync() as Float32Array, 0.1);
    lin.dispose();
    wide.dispose();
  });

  it('GRUCell parameters are all U(-1/sqrt(hidden), 1/sqrt(hidden))', () => {
    const cell = new GRUCell(40, 100, { rng: new Rng(3) });
    for (const [n, v] of cell.namedParameters()) {
      expect(n).toMatch(/^(weight|bias)_(ih|hh)$/);
      if (v.size > 1000) checkUniform(v.dataSync() as Float32Array, 0.1);
      else expect(Math.max(...Array.from(v.dataSync(), Math.abs))).toBeLessThanOrEqual(0.1);
    }
    expect(cell.weightIh.shape).toEqual([300, 40]);
    expect(cell.weightHh.shape).toEqual([300, 100]);
    cell.dispose();
  });

  it('the same seed gives identical parameters, another seed different ones', () => {
    class Net extends Module {
      mlp = this.addModule('mlp', new Sequential(new Linear(8, 16), new Tanh(), new Linear(16, 4)));
      gru = this.addModule('gru', new GRUCell(4, 4));
    }
    manualSeed(42);
    const a = new Net().stateDict();
    manualSeed(42);
    const b = new Net().stateDict();
    manualSeed(43);
    const c = new Net().stateDict();
    expect([...a.keys()]).toEqual([...b.keys()]);
    for (const [n, v] of a) expect(Array.from(b.get(n)!.data)).toEqual(Array.from(v.data));
    expect(Array.from(c.get('mlp.0.weight')!.data)).not.toEqual(Array.from(a.get('mlp.0.weight')!.data));
    // an explicit Rng does not depend on the global seed
    manualSeed(1);
    const d = new Linear(3, 2, { rng: new Rng(9) }).stateDict();
    manualSeed(2);
    const e = new Linear(3, 2, { rng: new Rng(9) }).stateDict();
    expect(Array.from(d.get('weight')!.data)).toEqual(Array.from(e.get('weight')!.data));
  });
});

describe('Module state dicts', () => {
  class Pair extends Module {
    a = this.addModule('a', new Linear(3, 2));
    g = this.addModule('g', new GRUCell(2, 2));
  }

  it('names nest with dots in registration order and stateDict returns copies', () => {
    const m = new Pair();
    expect(m.namedParameters().map(([n]) => n)).toEqual(['a.weight', 'a.bias', 'g.weight_ih', 'g.weight_hh', 'g.bias_ih', 'g.bias_hh']);
    expect(m.numParameters()).toBe(6 + 2 + 12 + 12 + 6 + 6);
    const s = m.stateDict();
    s.get('a.bias')!.data[0] = 123;
    expect(m.a.bias!.dataSync()[0]).not.toBe(123);
    m.dispose();
  });

  it('missing names, wrong shapes and wrong value counts are clear errors that leave the module untouched', () => {
    const m = new Pair();
    const before = m.stateDict();
    const s = m.stateDict();
    s.delete('g.bias_hh');
    expect(() => m.loadStateDict(s, { source: 'ckpt.json' })).toThrow(InputError);
    expect(() => m.loadStateDict(s, { source: 'ckpt.json' })).toThrow(/ckpt\.json: loading state: missing parameters g\.bias_hh/);
    const bad = m.stateDict();
    bad.set('a.weight', { shape: [3, 2], data: new Float32Array(6) });
    bad.set('a.bias', { shape: [2], data: new Float32Array(2).fill(9) });
    expect(() => m.loadStateDict(bad, { source: 'x.pt' })).toThrow(ShapeError);
    expect(() => m.loadStateDict(bad, { source: 'x.pt' })).toThrow(/parameter 'a\.weight' from x\.pt: expected shape \[2, 3\], got \[3, 2\]/);
    const short = m.stateDict();
    short.set('a.bias', { shape: [2], data: new Float32Array(1) });
    expect(() => m.loadStateDict(short)).toThrow(/values of parameter 'a\.bias'/);
    expect(Array.from(m.a.bias!.dataSync())).toEqual(Array.from(before.get('a.bias')!.data));
    m.dispose();
  });
});

describe('memory discipline', () => {
  it('100 Adam steps of a Linear + GRUCell model leak no tensors', () => {
    class Tiny extends Module {
      enc = this.addModule('enc', new Linear(6, 8));
      gru = this.addModule('gru', new GRUCell(8, 8));
      out = this.addModule('out', new Linear(8, 1));
    }
    const model = new Tiny();
    const opt = tf.train.adam(0.01);
    const rng = new Rng(7);
    const x = tf.tensor3d(rng.normalArray(4 * 3 * 6), [4, 3, 6]);
    const y = tf.tensor2d(rng.normalArray(4), [4, 1]);
    const counts: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 100; step++) {
      const loss = opt.minimize(
        () =>
          tf.tidy(() => {
            let h = tf.zeros([4, 8]) as tf.Tensor2D;
            for (let t = 0; t < 3; t++) {
              const xt = x.slice([0, t, 0], [4, 1, 6]).reshape([4, 6]) as tf.Tensor2D;
              h = model.gru.forward(model.enc.forward(xt) as tf.Tensor2D, h);
            }
            return tf.losses.meanSquaredError(y, model.out.forward(h)) as tf.Scalar;
          }),
        true,
        model.trainableParameters(),
      )!;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      counts.push(tf.memory().numTensors);
    }
    // Adam creates its moment variables on the first step; from then on the count must not move.
    expect(new Set(counts.slice(1))).toEqual(new Set([counts[1]]));
    expect(losses[99]).toBeLessThan(losses[0] * 0.5); // and it actually trains
    x.dispose();
    y.dispose();
    opt.dispose();
    model.dispose();
  });
});

describe('BatchNorm2d', () => {
  it('batch-normalises in training, tracks running stats like PyTorch, and uses them in eval', () => {
    const bn = new BatchNorm2d(2);
    const rng = new Rng(13);
    const x = tf.tensor4d(Float32Array.from({ length: 24 }, () => rng.normal() * 2 + 1), [3, 2, 2, 2]);
    const xa = Array.from(x.dataSync());
    const ch = [0, 1].map((c) => xa.filter((_, i) => i % 2 === c));
    const mean = ch.map((v) => v.reduce((a, b) => a + b, 0) / v.length);
    const biased = ch.map((v, c) => v.reduce((a, b) => a + (b - mean[c]) ** 2, 0) / v.length);
    const y = Array.from(bn.forward(x, true).dataSync());
    y.forEach((v, i) => expect(v).toBeCloseTo((xa[i] - mean[i % 2]) / Math.sqrt(biased[i % 2] + 1e-5), 4));
    const n = 12;
    const rm = Array.from(bn.runningMean.dataSync());
    const rv = Array.from(bn.runningVar.dataSync());
    [0, 1].forEach((c) => {
      expect(rm[c]).toBeCloseTo(0.1 * mean[c], 5);
      expect(rv[c]).toBeCloseTo(0.9 + 0.1 * biased[c] * (n / (n - 1)), 5);
    });
    const e = Array.from(bn.forward(x, false).dataSync());
    e.forEach((v, i) => expect(v).toBeCloseTo((xa[i] - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5), 4));
    bn.dispose();
  });

  it('leaves no tensors behind in either mode', () => {
    const bn = new BatchNorm2d(3);
    const x = tf.ones([2, 2, 2, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    tf.dispose([bn.forward(x, true), bn.forward(x, false)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x]);
    bn.dispose();
  });
});
