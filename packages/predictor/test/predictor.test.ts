import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, type ArchDag } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { Predictor, denormalize, normalizeTarget, targetStats } from '../src/index.js';
import { fixture, manifest, maxRelDiff, nb201Dag, originalPredictorCase } from './helpers.js';

let pred: Predictor;
let X: tf.Tensor3D;
let archs: ArchDag[];
beforeAll(async () => {
  await initBackend({ quiet: true });
  ({ pred, X } = originalPredictorCase());
  archs = manifest().generator_case.teacher_forced_archs.map(nb201Dag);
});

describe('predictor parity with the original (fixture weights)', () => {
  it('has the original 4,020,361 parameters under the PyTorch names', () => {
    expect(pred.numParameters()).toBe(4020361);
    expect(pred.namedParameters().map(([n]) => n)).toEqual([...fixture().group('predictor_state').keys()]);
  });

  it('set encoding, graph encoding and predictions match to 1e-4', () => {
    const D = pred.encodeDatasets(X);
    const G = pred.encodeGraphs(archs);
    const dD = maxRelDiff(D.dataSync(), fixture().get('predictor_case/set_encode').data);
    const dG = maxRelDiff(G.dataSync(), fixture().get('predictor_case/graph_encode').data);
    // pairs (0, a0), (0, a1), (1, a2)
    const Xp = tf.gather(X, [0, 0, 1]) as tf.Tensor3D;
    const y = pred.predict(Xp, archs);
    const dY = maxRelDiff(y.dataSync(), fixture().get('predictor_case/predict').data);
    console.log('predictor', dD, dG, dY);
    expect(dD).toBeLessThan(1e-4);
    expect(dG).toBeLessThan(1e-4);
    expect(dY).toBeLessThan(1e-4);
    tf.dispose([D, G, Xp, y]);
  });

  it('scoring every pair at once equals the pairwise forward', () => {
    const D = pred.encodeDatasets(X);
    const G = pred.encodeGraphs(archs);
    const all = tf.tidy(() => pred.headAllPairs(D, G).arraySync());
    for (let g = 0; g < 3; g++) {
      for (let d = 0; d < 2; d++) {
        const one = tf.tidy(() => pred.head(D.slice([d, 0], [1, -1]), G.slice([g, 0], [1, -1])).dataSync()[0]);
        expect(Math.abs(all[g][d] - one)).toBeLessThan(1e-6);
      }
    }
    const mean = pred.scoreAll(X, archs);
    for (let g = 0; g < 3; g++) expect(Math.abs(mean[g] - (all[g][0] + all[g][1]) / 2)).toBeLessThan(1e-6);
    tf.dispose([D, G]);
  });
});

describe('targets', () => {
  it('normalises with the training statistics and the extra /100, and inverts', () => {
    const stats = targetStats([70, 72, 74, 76]);
    expect(stats.mean).toBe(73);
    expect(stats.std).toBeCloseTo(Math.sqrt(20 / 3), 12); // unbiased: sum of squares 20 over n-1 = 3
    expect(normalizeTarget(76, stats)).toBeCloseTo(3 / Math.sqrt(20 / 3) / 100, 12);
    expect(denormalize(normalizeTarget(71.25, stats), stats)).toBeCloseTo(71.25, 10);
  });
});

describe('training', () => {
  const TINY = { numVertexTypes: 4, maxNodes: 5, startType: 0, endType: 1 };
  const dag = (rng: Rng): ArchDag => {
    const edges: Array<[number, number]> = [];
    for (let v = 1; v < 5; v++) {
      edges.push([v - 1, v]);
      for (let p = 0; p < v - 1; p++) if (rng.next() < 0.4) edges.push([p, v]);
    }
    return { types: [0, 2 + rng.int(2), 2 + rng.int(2), 2 + rng.int(2), 1], edges };
  };

  it('loss is the summed squared error and its gradients match finite differences', () => {
    const rng = new Rng(1);
    const p = new Predictor(TINY, { hs: 6, nz: 4, numSample: 3, featureDim: 5, numHeads: 2, rng });
    const Xs = tf.tensor3d(rng.normalArray(2 * 6 * 5), [2, 6, 5]);
    const dags = [dag(rng), dag(rng)];
    const targets = [0.3, -0.2];
    const yhat = tf.tidy(() => p.predict(Xs, dags).dataSync());
    const l = tf.tidy(() => p.loss(Xs, dags, targets).dataSync()[0]);
    expect(l).toBeCloseTo((yhat[0] - 0.3) ** 2 + (yhat[1] + 0.2) ** 2, 5);
    const used = p.namedParameters().filter(([n]) => !/^(fc2|hv_unify|set_fc)/.test(n));
    const { grads } = tf.variableGrads(() => p.loss(Xs, dags, targets), used.map(([, v]) => v));
    let checked = 0;
    for (const [name, v] of used) {
      // no gradient at all (PMA key biases: softmax cancels them) is a zero gradient
      const g = grads[v.name]?.dataSync() ?? new Float32Array(v.size);
      const base = v.dataSync().slice();
      const i = base.length - 1;
      const at = (delta: number) => {
        const w = base.slice();
        w[i] += delta;
        v.assign(tf.tensor(w, v.shape));
        return tf.tidy(() => p.loss(Xs, dags, targets).dataSync()[0]);
      };
      const fd = (at(1e-2) - at(-1e-2)) / 2e-2;
      v.assign(tf.tensor(base, v.shape));
      if (Math.abs(fd - g[i]) > 2e-3 * Math.max(0.05, Math.abs(g[i])) + 1e-4) throw new Error(`${name}: analytic ${g[i]} vs finite difference ${fd}`);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
    tf.dispose(Object.values(grads));
  });

  it('Adam steps reduce the loss without leaking tensors', () => {
    const rng = new Rng(2);
    const p = new Predictor(TINY, { hs: 8, nz: 4, numSample: 3, featureDim: 5, numHeads: 2, rng });
    const Xs = tf.tensor3d(rng.normalArray(4 * 6 * 5), [4, 6, 5]);
    const dags = [dag(rng), dag(rng), dag(rng), dag(rng)];
    const targets = [0.1, -0.1, 0.05, 0.0];
    const opt = tf.train.adam(1e-2);
    const step = () => {
      const c = opt.minimize(() => p.loss(Xs, dags, targets), true, p.trainableParameters())!;
      const v = c.dataSync()[0];
      c.dispose();
      return v;
    };
    const first = step();
    step();
    const before = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 30; i++) last = step();
    expect(tf.memory().numTensors).toBe(before);
    expect(last).toBeLessThan(first / 2);
  });
});

describe('MBV3 dimensions', () => {
  it('has the original 4,116,617 parameters for nvt = 29, max_n = 22', () => {
    const p = new Predictor({ numVertexTypes: 29, maxNodes: 22, startType: 0, endType: 1 }, { rng: new Rng(3) });
    expect(p.numParameters()).toBe(4116617);
    p.dispose();
  });
});

describe('trainable parameters', () => {
  it('every trainable parameter gets a gradient from the loss', () => {
    const rng = new Rng(7);
    const p = new Predictor({ numVertexTypes: 4, maxNodes: 5, startType: 0, endType: 1 }, { hs: 6, nz: 4, numSample: 3, featureDim: 5, numHeads: 2, rng });
    const Xs = tf.tensor3d(rng.normalArray(2 * 6 * 5), [2, 6, 5]);
    const dags: ArchDag[] = [0, 1].map(() => ({ types: [0, 2, 3, 2, 1], edges: [[0, 1], [1, 2], [2, 3], [3, 4], [0, 2]] }));
    const vars = p.trainableParameters();
    const { value, grads } = tf.variableGrads(() => p.loss(Xs, dags, [0.1, -0.1]), vars);
    expect(Object.keys(grads).length).toBe(vars.length);
    tf.dispose([value, Xs, ...Object.values(grads)]);
  });
});
