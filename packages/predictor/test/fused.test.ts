import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, type ArchDag } from '@metad2a/core';
import { fusedOps, fusedOpsAvailable, initBackend } from '@metad2a/nn';
import { Predictor } from '../src/index.js';
import { originalPredictorCase } from './helpers.js';
// The fused ops need the OpenBLAS addon (CI builds it); without it, or with METAD2A_BLAS=off, the
// models use the tfjs compositions and there is nothing to compare.
const FUSED_AVAILABLE = fusedOpsAvailable();

// The fused host ops (set-encoder projections and heads, D-VAE recursion, native pair head) against
// the tfjs compositions (METAD2A_FUSED=off), with the original's weights: ranking scores and the
// training loss gradient of every parameter.
let pred: Predictor;
let X: tf.Tensor3D;
const rng = new Rng(5);
/** NB201-shaped graphs (the stored 11-edge pattern) with random operation types. */
const cell = (): ArchDag => ({
  types: [0, ...Array.from({ length: 6 }, () => 2 + rng.int(5)), 1],
  edges: [[0, 1], [1, 2], [1, 3], [1, 5], [2, 3], [2, 6], [3, 4], [3, 6], [4, 5], [5, 6], [6, 7]],
});
const graphs = Array.from({ length: 40 }, cell);

beforeAll(async () => {
  await initBackend({ quiet: true });
  ({ pred, X } = originalPredictorCase());
});
afterEach(() => {
  delete process.env.METAD2A_FUSED;
});

describe.runIf(FUSED_AVAILABLE)('fused predictor', () => {
  it('runs here', () => {
    expect(fusedOps()).not.toBeNull();
  });

  it('ranking scores equal the tfjs composition', () => {
    process.env.METAD2A_FUSED = 'on';
    const fused = pred.scoreAll(X, graphs);
    process.env.METAD2A_FUSED = 'off';
    const composed = pred.scoreAll(X, graphs);
    let scale = 0;
    for (const v of composed) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < graphs.length; i++) expect(Math.abs(fused[i] - composed[i])).toBeLessThan(1e-5 * scale);
  });

  it('training loss and every parameter gradient equal the tfjs composition', () => {
    const dags = graphs.slice(0, X.shape[0]);
    const targets = Array.from({ length: X.shape[0] }, () => rng.normal(0, 0.01));
    const vars = pred.trainableParameters();
    const run = (mode: string) => {
      process.env.METAD2A_FUSED = mode;
      const { value, grads } = tf.variableGrads(() => pred.loss(X, dags, targets), vars);
      const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name]?.dataSync().slice() ?? null) };
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const f = run('on');
    const c = run('off');
    expect(Math.abs(f.loss - c.loss)).toBeLessThan(1e-5 * Math.abs(c.loss));
    let compared = 0;
    c.grads.forEach((g, i) => {
      if (!g) return expect(f.grads[i]).toBeNull();
      let scale = 0;
      for (const v of g) scale = Math.max(scale, Math.abs(v));
      // (gradients that are zero in exact arithmetic, e.g. of biases that softmax cancels, are
      // float32 noise of ~1e-13 on both sides: the absolute floor covers them)
      const fg = f.grads[i]!;
      for (let k = 0; k < g.length; k++) {
        if (Math.abs(fg[k] - g[k]) > 1e-5 * scale + 1e-9) throw new Error(`${vars[i].name}[${k}]: fused ${fg[k]} vs ${g[k]} (scale ${scale})`);
      }
      compared++;
    });
    expect(compared).toBeGreaterThan(40);
  });
});
