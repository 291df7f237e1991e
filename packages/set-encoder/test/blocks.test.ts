import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, ShapeError } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { DatasetEncoder, ISAB, MAB, PMA, SetPool, packDatasets } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ quiet: true });
});

type Mat = number[][];
const matmulT = (x: Mat, w: Mat, b?: number[]): Mat => x.map((row) => w.map((wr, o) => wr.reduce((s, wi, i) => s + wi * row[i], b ? b[o] : 0)));
const add = (a: Mat, b: Mat): Mat => a.map((r, i) => r.map((v, j) => v + b[i][j]));
const relu = (a: Mat): Mat => a.map((r) => r.map((v) => Math.max(0, v)));
const layerNorm = (a: Mat, w: number[], b: number[]): Mat =>
  a.map((r) => {
    const mean = r.reduce((s, v) => s + v, 0) / r.length;
    const variance = r.reduce((s, v) => s + (v - mean) ** 2, 0) / r.length;
    return r.map((v, j) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[j] + b[j]);
  });

/** A loop-by-loop MAB in plain numbers, written from the Set Transformer paper/code, for one set. */
function naiveMab(mab: MAB, Qin: Mat, Kin: Mat, validKeys = Kin.length): Mat {
  const p = (name: string): { data: Float32Array; shape: number[] } => {
    const v = mab.stateDict().get(name)!;
    return v;
  };
  const W = (name: string): Mat => {
    const { data, shape } = p(`${name}.weight`);
    return Array.from({ length: shape[0] }, (_, o) => Array.from(data.subarray(o * shape[1], (o + 1) * shape[1])));
  };
  const B = (name: string): number[] => Array.from(p(`${name}.bias`).data);
  const Q = matmulT(Qin, W('fc_q'), B('fc_q'));
  const K = matmulT(Kin, W('fc_k'), B('fc_k'));
  const V = matmulT(Kin, W('fc_v'), B('fc_v'));
  const dV = mab.dimV;
  const d = dV / mab.numHeads;
  let O: Mat = Q.map((r) => [...r]);
  for (let h = 0; h < mab.numHeads; h++) {
    for (let i = 0; i < Q.length; i++) {
      const s: number[] = [];
      for (let j = 0; j < validKeys; j++) {
        let dot = 0;
        for (let f = h * d; f < (h + 1) * d; f++) dot += Q[i][f] * K[j][f];
        s.push(dot / Math.sqrt(dV));
      }
      const mx = Math.max(...s);
      const e = s.map((v) => Math.exp(v - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let f = h * d; f < (h + 1) * d; f++) {
        let acc = 0;
        for (let j = 0; j < validKeys; j++) acc += (e[j] / z) * V[j][f];
        O[i][f] += acc;
      }
    }
  }
  if (mab.ln0) O = layerNorm(O, Array.from(p('ln0.weight').data), Array.from(p('ln0.bias').data));
  O = add(O, relu(matmulT(O, W('fc_o'), B('fc_o'))));
  if (mab.ln1) O = layerNorm(O, Array.from(p('ln1.weight').data), Array.from(p('ln1.bias').data));
  return O;
}

const randMat = (rng: Rng, n: number, m: number): Mat => Array.from({ length: n }, () => Array.from({ length: m }, () => rng.normal()));
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol * (1 + Math.abs(b[i])));
};

describe('MAB against a loop-by-loop reference', () => {
  it('matches with LayerNorm on, cross attention (dQ != dK), 2 heads, scale sqrt(dV)', () => {
    const rng = new Rng(1);
    const mab = new MAB(5, 7, 8, 2, { ln: true, rng });
    // make the LayerNorm affine parameters non-trivial
    mab.ln0!.weight.assign(tf.tensor1d([1.5, 0.5, 1, 2, 0.3, 1, 1.2, 0.8]));
    mab.ln1!.bias.assign(tf.tensor1d([0.1, -0.2, 0.3, 0, 0, 0.5, -0.5, 0.2]));
    const Q = randMat(rng, 3, 5);
    const K = randMat(rng, 4, 7);
    const got = tf.tidy(() => mab.forward(tf.tensor3d([Q]), tf.tensor3d([K])).dataSync());
    close(got, naiveMab(mab, Q, K).flat(), 1e-5);
  });

  it('masked keys are ignored exactly as if absent', () => {
    const rng = new Rng(2);
    const mab = new MAB(6, 6, 8, 4, { rng });
    const X = randMat(rng, 5, 6);
    const got = tf.tidy(() => mab.forward(tf.tensor3d([X]), tf.tensor3d([X]), tf.tensor2d([[1, 1, 1, 0, 0]])).dataSync());
    close(got, naiveMab(mab, X, X, 3).flat(), 1e-5);
  });

  it('ISAB and a 2-seed PMA compose MABs as in the original', () => {
    const rng = new Rng(3);
    const isab = new ISAB(6, 8, 2, 3, { rng });
    const pma = new PMA(8, 2, 2, { rng });
    const X = randMat(rng, 4, 6);
    const I = Array.from({ length: 3 }, (_, i) => Array.from(isab.I.dataSync().subarray(i * 8, i * 8 + 8)));
    const S = Array.from({ length: 2 }, (_, i) => Array.from(pma.S.dataSync().subarray(i * 8, i * 8 + 8)));
    const H = naiveMab(isab.mab0, I, X);
    const Y = naiveMab(isab.mab1, X, H);
    const want = naiveMab(pma.mab, S, Y);
    const got = tf.tidy(() => pma.forward(isab.forward(tf.tensor3d([X]))).dataSync());
    close(got, want.flat(), 1e-5);
  });

  it('SetPool names its parameters like the PyTorch state dict', () => {
    const sp = new SetPool(512, 1, 56, { dimHidden: 56, numHeads: 4, mode: 'sabPF' });
    const names = sp.namedParameters().map(([n]) => n);
    expect(names.slice(0, 3)).toEqual(['enc.0.mab.fc_q.weight', 'enc.0.mab.fc_q.bias', 'enc.0.mab.fc_k.weight']);
    expect(names).toContain('dec.0.S');
    expect(names).toContain('dec.1.weight');
    expect(sp.numParameters()).toBe(118160);
    expect(new SetPool(56, 1, 56, { dimHidden: 56, numHeads: 4, mode: 'sabPF' }).numParameters()).toBe(41552);
  });
});

describe('DatasetEncoder batching', () => {
  const F = 12;
  const ns = 4;
  const makeData = (rng: Rng, C: number) => Float32Array.from({ length: C * ns * F }, () => rng.normal());

  it('datasets with different class counts in one padded batch equal encoding each alone', () => {
    const rng = new Rng(4);
    const enc = new DatasetEncoder({ featureDim: F, numSample: ns, dim: 8, rng });
    const sets = [3, 5, 1].map((C) => ({ features: makeData(rng, C), numClasses: C }));
    const { X, classCounts } = packDatasets(sets, ns, F);
    const batched = tf.tidy(() => enc.forward(X, classCounts).arraySync());
    sets.forEach((s, b) => {
      const alone = tf.tidy(() => enc.forward(tf.tensor3d(s.features, [1, s.numClasses * ns, F])).dataSync());
      close(batched[b], alone, 1e-5);
    });
    X.dispose();
  });

  it('is invariant to the order of samples within a class and of the classes', () => {
    const rng = new Rng(5);
    const enc = new DatasetEncoder({ featureDim: F, numSample: ns, dim: 8, rng });
    const C = 3;
    const data = makeData(rng, C);
    const rowsOf = (c: number, s: number) => data.subarray((c * ns + s) * F, (c * ns + s + 1) * F);
    const permuted = new Float32Array(data.length);
    const classOrder = [2, 0, 1];
    let r = 0;
    for (const c of classOrder) for (const s of [3, 1, 0, 2]) permuted.set(rowsOf(c, s), F * r++);
    const a = tf.tidy(() => enc.forward(tf.tensor3d(data, [1, C * ns, F])).dataSync());
    const b = tf.tidy(() => enc.forward(tf.tensor3d(permuted, [1, C * ns, F])).dataSync());
    close(a, b, 1e-5);
  });

  it('rejects rows that are not whole classes, naming the expected layout', () => {
    const enc = new DatasetEncoder({ featureDim: F, numSample: ns, dim: 8 });
    expect(() => enc.forward(tf.zeros([1, 7, F]) as tf.Tensor3D)).toThrow(ShapeError);
    expect(() => enc.forward(tf.zeros([2, 8, F]) as tf.Tensor3D, [1, 3])).toThrow(/classCounts\[1\]/);
  });

  it('trains: gradients flow to both pools and match finite differences', () => {
    const rng = new Rng(6);
    const enc = new DatasetEncoder({ featureDim: 6, numSample: 3, dim: 4, numHeads: 2, rng });
    const X = tf.tensor3d(Float32Array.from({ length: 2 * 2 * 3 * 6 }, () => rng.normal()), [2, 6, 6]);
    const target = tf.tensor2d(Float32Array.from({ length: 8 }, () => rng.normal()), [2, 4]);
    const lossOf = () => tf.tidy(() => enc.forward(X, [2, 1]).sub(target).square().sum() as tf.Scalar);
    const params = enc.namedParameters();
    const { grads } = tf.variableGrads(lossOf, params.map(([, v]) => v));
    for (const name of ['intra_setpool.enc.0.mab.fc_q.weight', 'inter_setpool.dec.0.S', 'intra_setpool.dec.1.bias']) {
      const v = params.find(([n]) => n === name)![1];
      // no gradient at all (PMA key biases: softmax cancels them) is a zero gradient
      const g = grads[v.name]?.dataSync() ?? new Float32Array(v.size);
      const base = v.dataSync().slice();
      // central differences on a few coordinates, step 1e-2 in float32
      for (const i of [0, Math.floor(base.length / 2), base.length - 1]) {
        const h = 1e-2;
        const at = (delta: number) => {
          const w = base.slice();
          w[i] += delta;
          v.assign(tf.tensor(w, v.shape));
          return lossOf().dataSync()[0];
        };
        const fd = (at(h) - at(-h)) / (2 * h);
        v.assign(tf.tensor(base, v.shape));
        expect(Math.abs(fd - g[i])).toBeLessThan(2e-2 * Math.max(1, Math.abs(g[i])));
      }
    }
  });
});

describe('feature pools', () => {
  it('encoding samples drawn as pool rows equals encoding the gathered features', () => {
    const rng = new Rng(21);
    const F = 12;
    const ns = 4;
    const enc = new DatasetEncoder({ featureDim: F, numSample: ns, dim: 8, rng });
    const sizes = [6, 9, 5];
    const P = sizes.reduce((a, b) => a + b, 0);
    const feats = rng.normalArray(P * F);
    const pool = enc.preparePool(tf.tensor2d(feats, [P, F]), sizes);
    const rows = enc.sampleRows(pool, 5, rng);
    // every sample takes ns distinct rows of each class, class-major
    for (let b = 0; b < 5; b++) {
      for (let c = 0; c < 3; c++) {
        const r = Array.from(rows.subarray((b * 3 + c) * ns, (b * 3 + c + 1) * ns));
        const start = sizes.slice(0, c).reduce((a, x) => a + x, 0);
        expect(new Set(r).size).toBe(ns);
        for (const x of r) expect(x >= start && x < start + sizes[c]).toBe(true);
      }
    }
    const X = new Float32Array(rows.length * F);
    rows.forEach((r, i) => X.set(feats.subarray(r * F, (r + 1) * F), i * F));
    const direct = tf.tidy(() => enc.forward(tf.tensor3d(X, [5, 3 * ns, F])).dataSync());
    const pooled = tf.tidy(() => enc.encodePoolRows(pool, rows).dataSync());
    close(pooled, direct, 1e-5);
    pool.dispose();
    expect(() => enc.preparePool(tf.zeros([6, F]) as tf.Tensor2D, [3, 3])).toThrow(/needs 4/);
  });
});

describe('training on feature data', () => {
  it('keeps what the backward pass needs: the features may be disposed before it runs', () => {
    const enc = new DatasetEncoder({ featureDim: 6, numSample: 3, dim: 4, numHeads: 2, rng: new Rng(70) });
    const vars = enc.trainableParameters();
    const data = new Rng(71).normalArray(2 * 6 * 6);
    const grads = (disposeEarly: boolean) => {
      const X = tf.tensor3d(data, [2, 6, 6]);
      const { value, grads: g } = tf.variableGrads(() => {
        const y = enc.forward(X).sum() as tf.Scalar;
        if (disposeEarly) X.dispose();
        return y;
      }, vars);
      const out = vars.map((v) => g[v.name]?.dataSync().slice() ?? null);
      tf.dispose([value, ...Object.values(g)]);
      if (!X.isDisposed) X.dispose();
      return out;
    };
    const early = grads(true);
    const late = grads(false);
    late.forEach((g, i) => {
      if (g) close(early[i]!, g, 1e-6);
    });
  });
});
