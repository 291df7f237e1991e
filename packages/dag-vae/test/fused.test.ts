import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Rng, type ArchDag } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { blasAddon, fusedAddon } from '@metad2a/kernels-blas';
import { Generator, packGraphs } from '../src/index.js';
// The fused ops need the OpenBLAS addon (CI builds it); without it, or with METAD2A_BLAS=off, the
// models use the tfjs compositions and there is nothing to compare.
const FUSED_AVAILABLE = blasAddon() !== null && (process.env.METAD2A_BLAS ?? '').toLowerCase() !== 'off';

// The fused host op (gatedRecurrence) against the per-step tfjs composition it replaces: same
// loss, same gradient for every parameter, on graphs whose edges differ across the batch (partial
// masks), with teacher forcing (decoder) and both encoder directions, short graphs included.
const SPACE = { numVertexTypes: 5, maxNodes: 6, startType: 0, endType: 1 };

beforeAll(async () => {
  await initBackend({ quiet: true });
});
afterEach(() => {
  delete process.env.METAD2A_FUSED;
});

function randomDag(rng: Rng, size = SPACE.maxNodes): ArchDag {
  const types = [0];
  for (let v = 1; v < size - 1; v++) types.push(2 + rng.int(3));
  types.push(1);
  const edges: Array<[number, number]> = [];
  for (let v = 1; v < size; v++) for (let p = 0; p < v; p++) if (p === v - 1 || rng.next() < 0.4) edges.push([p, v]);
  return { types, edges };
}

/** Loss and gradients by parameter name, fused or not. */
function lossAndGrads(gen: Generator, fn: () => tf.Scalar, fused: boolean) {
  process.env.METAD2A_FUSED = fused ? 'on' : 'off';
  const named = gen.namedParameters();
  const vars = named.map(([, v]) => v);
  const saved = vars.map((v) => v.trainable);
  for (const v of vars) v.trainable = true;
  const { value, grads } = tf.variableGrads(fn, vars);
  named.forEach(([, v], i) => (v.trainable = saved[i]));
  const out = new Map<string, Float32Array>();
  for (const [name, v] of named) out.set(name, (grads[v.name]?.dataSync() as Float32Array) ?? new Float32Array(v.size));
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out };
}

function compare(a: ReturnType<typeof lossAndGrads>, b: ReturnType<typeof lossAndGrads>) {
  expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(b.loss)));
  let worst = 0;
  let nonzero = 0;
  for (const [name, g] of b.grads) {
    const f = a.grads.get(name)!;
    let scale = 0;
    for (const x of g) scale = Math.max(scale, Math.abs(x));
    if (scale === 0) continue;
    nonzero++;
    for (let i = 0; i < g.length; i++) {
      const err = Math.abs(f[i] - g[i]) / scale;
      if (err > 1e-5) throw new Error(`${name}[${i}]: fused ${f[i]} vs composed ${g[i]}`);
      worst = Math.max(worst, err);
    }
  }
  return { worst, nonzero };
}

describe.runIf(FUSED_AVAILABLE)('fused D-VAE message passing', () => {
  it('is active here (the OpenBLAS addon is built), so the other tests exercise it', () => {
    expect(fusedAddon()).not.toBeNull();
  });

  it('teacher-forced loss: same value and gradients as the per-step composition', () => {
    const gen = new Generator(SPACE, { hs: 7, nz: 7, numSample: 3, featureDim: 6, numHeads: 1, rng: new Rng(1) });
    const rng = new Rng(2);
    const batch = packGraphs(Array.from({ length: 5 }, () => randomDag(rng)), SPACE);
    const mu = tf.tensor2d(rng.normalArray(35), [5, 7]);
    const logvar = tf.tensor2d(rng.normalArray(35).map((x) => 0.1 * x), [5, 7]);
    const fn = () => gen.lossFromLatent(mu, logvar, batch, { train: false, beta: 0.5 }).loss;
    const fused = lossAndGrads(gen, fn, true);
    const composed = lossAndGrads(gen, fn, false);
    const { nonzero } = compare(fused, composed);
    // grud, fc3, add_vertex, add_edge, decoding_gate, decoding_mapper and the set-encoder-free head
    expect(nonzero).toBeGreaterThanOrEqual(14);
    tf.dispose([mu, logvar]);
    gen.dispose();
  });

  it('graph encoder (both directions, short graphs): same states and gradients', () => {
    const gen = new Generator(SPACE, { hs: 6, nz: 6, numSample: 3, featureDim: 6, numHeads: 1, rng: new Rng(3) });
    const rng = new Rng(4);
    const dags = [randomDag(rng), randomDag(rng, 4), randomDag(rng), randomDag(rng, 5), randomDag(rng, 2)];
    const target = tf.tensor2d(rng.normalArray(30), [5, 6]);
    const fn = () => gen.graphEncode(dags).mu.sub(target).square().sum() as tf.Scalar;
    const fused = lossAndGrads(gen, fn, true);
    const composed = lossAndGrads(gen, fn, false);
    const { nonzero } = compare(fused, composed);
    expect(nonzero).toBeGreaterThanOrEqual(12); // grue_*, gate_*, mapper_* of both directions, hg_unify, enc_g_mu
    target.dispose();
    gen.dispose();
  });

  it('deduplicated inference encoder (host rows, sender-side W_hh products) equals the tfjs steps', () => {
    const gen = new Generator(SPACE, { hs: 8, nz: 8, numSample: 3, featureDim: 6, numHeads: 1, rng: new Rng(7) });
    const rng = new Rng(8);
    // repeats and shared prefixes make rows shared across graphs; short graphs too
    const base = Array.from({ length: 6 }, () => randomDag(rng));
    const dags = [...base, base[0], base[2], randomDag(rng, 4), randomDag(rng, 3), ...Array.from({ length: 6 }, () => randomDag(rng))];
    const run = (mode: string) => {
      process.env.METAD2A_FUSED = mode;
      const t = gen.graphEncoder.graphState(dags, { dedupe: true });
      const out = t.dataSync().slice();
      t.dispose();
      return out;
    };
    const host = run('on');
    const composed = run('off');
    let scale = 0;
    for (const x of composed) scale = Math.max(scale, Math.abs(x));
    for (let i = 0; i < composed.length; i++) expect(Math.abs(host[i] - composed[i])).toBeLessThan(1e-5 * scale);
    gen.dispose();
  });

  it('leaks no tensors, with or without a gradient tape', () => {
    const gen = new Generator(SPACE, { hs: 5, nz: 5, numSample: 3, featureDim: 6, numHeads: 1, rng: new Rng(5) });
    const rng = new Rng(6);
    const batch = packGraphs([randomDag(rng), randomDag(rng)], SPACE);
    const z = tf.tensor2d(rng.normalArray(10), [2, 5]);
    const before = tf.memory().numTensors;
    tf.tidy(() => gen.decoder.reconstructionLoss(z, batch).dataSync());
    const { value, grads } = tf.variableGrads(() => gen.decoder.reconstructionLoss(z, batch), gen.decoder.trainableParameters());
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    z.dispose();
    gen.dispose();
  });
});
