import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { InputError, Rng, type ArchDag } from '@metad2a/core';
import { importTorchStateDict, initBackend } from '@metad2a/nn';
import { Generator, packGraphs } from '../src/index.js';
import { NB201, ORIGINAL_CKPT, fixture, manifest, nb201Dag } from './helpers.js';

beforeAll(async () => {
  await initBackend({ quiet: true });
});

/** A tiny space and model for gradient and batching checks. */
const TINY = { numVertexTypes: 4, maxNodes: 5, startType: 0, endType: 1 };
const tinyGen = (seed: number) => new Generator(TINY, { hs: 5, nz: 5, numSample: 3, featureDim: 6, numHeads: 1, rng: new Rng(seed) });
const randomTinyDag = (rng: Rng): ArchDag => {
  const types = [0, 2 + rng.int(2), 2 + rng.int(2), 2 + rng.int(2), 1];
  const edges: Array<[number, number]> = [];
  for (let v = 1; v < 5; v++) {
    edges.push([v - 1, v]);
    for (let p = 0; p < v - 1; p++) if (rng.next() < 0.4) edges.push([p, v]);
  }
  return { types, edges };
};
const randX = (rng: Rng, B: number, C: number) => tf.tensor3d(rng.normalArray(B * C * 3 * 6), [B, C * 3, 6]);

describe('the original checkpoint file', () => {
  it('imports strictly from generator_ckpt_400.pt and decodes the fixture latents identically', () => {
    const gen = new Generator(NB201);
    gen.loadOriginal(importTorchStateDict(ORIGINAL_CKPT), ORIGINAL_CKPT);
    const z = fixture().get('generator_case/decode_from_z/z');
    const got = gen.sample(tf.tensor2d(z.data, z.shape as [number, number]), { mode: 'argmax' });
    expect(got.map((g) => ({ types: g.types, edges: g.edges }))).toEqual(
      manifest().generator_case.decode_from_z.decoded.map((d: ArchDag) => ({ types: d.types, edges: d.edges })),
    );
    gen.dispose();
  });
});

describe('batching', () => {
  it('a batch decodes (argmax) exactly as each latent alone', () => {
    const gen = new Generator(NB201);
    gen.loadOriginal(fixture().group('generator_state'));
    const z = fixture().get('generator_case/decode_from_z/z');
    const all = gen.sample(tf.tensor2d(z.data, z.shape as [number, number]), { mode: 'argmax' });
    for (const i of [0, 1, 13, 23]) {
      const one = gen.sample(tf.tensor2d(z.data.slice(i * 56, i * 56 + 56), [1, 56]), { mode: 'argmax' });
      expect(one[0]).toEqual(all[i]);
    }
    gen.dispose();
  });

  it('the batch loss is the sum of the per-graph losses, and the graph encoder is per-graph too', () => {
    const gen = tinyGen(1);
    const rng = new Rng(2);
    const dags = [randomTinyDag(rng), randomTinyDag(rng), randomTinyDag(rng)];
    const X = randX(rng, 3, 2);
    const batchLoss = tf.tidy(() => gen.loss(X, dags, { train: false }).loss.dataSync()[0]);
    const mu = tf.tidy(() => gen.graphEncode(dags).mu.arraySync());
    let sum = 0;
    dags.forEach((d, i) => {
      const Xi = X.slice([i, 0, 0], [1, -1, -1]) as tf.Tensor3D;
      sum += tf.tidy(() => gen.loss(Xi, [d], { train: false }).loss.dataSync()[0]);
      const mi = tf.tidy(() => gen.graphEncode([d]).mu.dataSync());
      mi.forEach((v, k) => expect(Math.abs(v - mu[i][k])).toBeLessThan(1e-5));
    });
    expect(Math.abs(batchLoss - sum) / sum).toBeLessThan(1e-5);
    gen.dispose();
  });

  it('graphs shorter than max_n encode as they would alone', () => {
    const gen = tinyGen(3);
    const short: ArchDag = { types: [0, 2, 1], edges: [[0, 1], [1, 2], [0, 2]] };
    const full = randomTinyDag(new Rng(4));
    const both = tf.tidy(() => gen.graphEncode([full, short]).mu.arraySync());
    const alone = tf.tidy(() => gen.graphEncode([short]).mu.arraySync());
    alone[0].forEach((v, k) => expect(Math.abs(v - both[1][k])).toBeLessThan(1e-5));
    gen.dispose();
  });
});

describe('sampling', () => {
  it('is reproducible from the seed and its type frequencies follow softmax(add_vertex(h0))', () => {
    const gen = tinyGen(5);
    const z = tf.tensor2d(new Rng(6).normalArray(5), [1, 5]);
    const Z = tf.tile(z, [3000, 1]) as tf.Tensor2D;
    const a = gen.sample(Z, { mode: 'sample', rng: new Rng(7) });
    const b = gen.sample(Z, { mode: 'sample', rng: new Rng(7) });
    expect(a).toEqual(b);
    // probabilities of the first sampled type, computed by hand from the weights
    const probs = tf.tidy(() => {
      const d = gen.decoder;
      const h0 = tf.tanh(d.fc3.forward(z)) as tf.Tensor2D;
      const h = d.grud.forward(tf.oneHot([0], 4).toFloat() as tf.Tensor2D, h0);
      return tf.softmax(d.add_vertex.forward(h) as tf.Tensor2D).dataSync();
    });
    const counts = [0, 0, 0, 0];
    for (const g of a) counts[g.types[1]]++;
    for (let t = 0; t < 4; t++) {
      const sd = Math.sqrt((3000 * probs[t] * (1 - probs[t])));
      expect(Math.abs(counts[t] - 3000 * probs[t])).toBeLessThan(4 * sd + 1);
    }
    // an END drawn early finishes the graph: START -> END only
    for (const g of a) if (g.types[1] === 1) expect(g).toEqual({ types: [0, 1], edges: [[0, 1]] });
    tf.dispose([z, Z]);
    gen.dispose();
  });
});

describe('training', () => {
  it('gradients of the loss match central finite differences (tiny model, float32, step 3e-3)', () => {
    const gen = tinyGen(8);
    const rng = new Rng(9);
    const dags = [randomTinyDag(rng), randomTinyDag(rng)];
    const X = randX(rng, 2, 2);
    const batch = packGraphs(dags, TINY);
    const lossOf = () => tf.tidy(() => gen.loss(X, batch, { train: false, beta: 0.5 }).loss);
    const named = gen.namedParameters();
    const used = named.filter(([n]) => !/^(grue_|gate_|mapper_|enc_g_|hv_|hg_|set_fc)/.test(n) && !/^fc2/.test(n) || n === 'fc2.bias');
    const { grads } = tf.variableGrads(lossOf, used.map(([, v]) => v));
    let checked = 0;
    let skipped = 0;
    for (const [name, v] of used) {
      // no gradient at all (PMA key biases: softmax cancels them) is a zero gradient
      const g = grads[v.name]?.dataSync() ?? new Float32Array(v.size);
      const base = v.dataSync().slice();
      for (const i of [0, base.length - 1]) {
        const at = (delta: number) => {
          const w = base.slice();
          w[i] += delta;
          v.assign(tf.tensor(w, v.shape));
          return tf.tidy(() => lossOf().dataSync()[0]);
        };
        // two step sizes: where they disagree a ReLU kink lies within the step and FD says nothing
        // (float32 rounding of a loss ~25 adds ~6e-4 of noise at step 3e-3)
        const fd = (at(3e-3) - at(-3e-3)) / 6e-3;
        const fdLarge = (at(1e-2) - at(-1e-2)) / 2e-2;
        v.assign(tf.tensor(base, v.shape));
        if (Math.abs(fd - fdLarge) > 5e-3 + 5e-2 * Math.abs(fd)) {
          skipped++;
          continue;
        }
        const err = Math.abs(fd - g[i]);
        if (err > 2e-3 + 1e-2 * Math.abs(g[i])) throw new Error(`${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(60);
    expect(skipped).toBeLessThan(checked / 10);
    tf.dispose(Object.values(grads));
    gen.dispose();
  });

  it('graph-encoder gradients (both directions, hg_unify) match finite differences', () => {
    const gen = tinyGen(10);
    const dags = [randomTinyDag(new Rng(11)), randomTinyDag(new Rng(12))];
    const target = tf.tensor2d(new Rng(13).normalArray(10), [2, 5]);
    const lossOf = () => tf.tidy(() => gen.graphEncode(dags).mu.sub(target).square().sum() as tf.Scalar);
    const used = gen.namedParameters().filter(([n]) => /^(grue_|gate_|mapper_|hg_unify|enc_g_mu)/.test(n));
    // the generator's loss never trains its graph encoder (frozen); differentiate it here anyway
    for (const [, v] of used) v.trainable = true;
    const { grads } = tf.variableGrads(lossOf, used.map(([, v]) => v));
    for (const [name, v] of used) {
      // no gradient at all (PMA key biases: softmax cancels them) is a zero gradient
      const g = grads[v.name]?.dataSync() ?? new Float32Array(v.size);
      const base = v.dataSync().slice();
      const i = base.length - 1;
      const at = (delta: number) => {
        const w = base.slice();
        w[i] += delta;
        v.assign(tf.tensor(w, v.shape));
        return tf.tidy(() => lossOf().dataSync()[0]);
      };
      const fd = (at(1e-2) - at(-1e-2)) / 2e-2;
      v.assign(tf.tensor(base, v.shape));
      if (Math.abs(fd - g[i]) > 1e-2 * Math.max(1, Math.abs(g[i]))) throw new Error(`${name}: analytic ${g[i]} vs finite difference ${fd}`);
    }
    tf.dispose([target, ...Object.values(grads)]);
    gen.dispose();
  });

  it('Adam steps lower the loss and leak no tensors; decoding leaks none either', () => {
    const gen = tinyGen(14);
    const rng = new Rng(15);
    const dags = Array.from({ length: 4 }, () => randomTinyDag(rng));
    const X = randX(rng, 4, 2);
    const opt = tf.train.adam(1e-2);
    const vars = gen.trainableParameters();
    const step = () => {
      const cost = opt.minimize(() => gen.loss(X, dags, { train: true, rng }).loss, true, vars)!;
      const v = cost.dataSync()[0];
      cost.dispose();
      return v;
    };
    const first = step();
    step();
    const before = tf.memory().numTensors;
    let last = 0;
    for (let i = 0; i < 20; i++) last = step();
    expect(tf.memory().numTensors).toBe(before);
    expect(last).toBeLessThan(first);
    const z = tf.tensor2d(rng.normalArray(20), [4, 5]);
    gen.sample(z, { mode: 'sample', rng });
    const mid = tf.memory().numTensors;
    gen.sample(z, { mode: 'sample', rng });
    gen.sample(z, { mode: 'argmax' });
    expect(tf.memory().numTensors).toBe(mid);
    z.dispose();
    gen.dispose();
  });
});

describe('bad input', () => {
  it('names the graph and field of an edge that points backwards or a type out of range', () => {
    const gen = tinyGen(16);
    expect(() => gen.graphEncode([randomTinyDag(new Rng(1)), { types: [0, 2, 1], edges: [[2, 1]] }])).toThrow(/record 1, field 'edges\[0\]'/);
    expect(() => gen.graphEncode([{ types: [0, 9, 1], edges: [] }])).toThrow(InputError);
    expect(() => tf.tidy(() => gen.loss(randX(new Rng(1), 1, 2), [{ types: [0, 2, 1], edges: [[0, 1], [1, 2]] }]))).toThrow(/exactly 5 vertices/);
    gen.dispose();
  });
});

describe('teacher forcing on NB201 graphs', () => {
  it('train mode adds 0.01-scaled noise: the loss moves only slightly away from eval mode', () => {
    const gen = new Generator(NB201);
    gen.loadOriginal(fixture().group('generator_state'));
    const a = fixture().get('generator_case/input_X');
    const X = tf.tensor3d(a.data, a.shape as [number, number, number]);
    const dags = manifest().generator_case.teacher_forced_archs.map(nb201Dag);
    const evalLoss = tf.tidy(() => gen.loss(X, dags, { train: false }).recon.dataSync()[0]);
    const trainLoss = tf.tidy(() => gen.loss(X, dags, { train: true, rng: new Rng(1) }).recon.dataSync()[0]);
    expect(trainLoss).not.toBe(evalLoss);
    expect(Math.abs(trainLoss - evalLoss) / evalLoss).toBeLessThan(0.05);
    X.dispose();
    gen.dispose();
  });
});

describe('generation from a feature pool', () => {
  it('equals encoding the same samples directly and decoding their mu (argmax)', () => {
    const gen = tinyGen(30);
    const rng = new Rng(31);
    const sizes = [5, 7];
    const feats = rng.normalArray(12 * 6);
    const pool = gen.preparePool(tf.tensor2d(feats, [12, 6]), sizes);
    const viaPool = gen.generateFromPool(pool, 6, { mode: 'argmax', rng: new Rng(32) });
    const rows = gen.datasetEncoder.sampleRows(pool, 6, new Rng(32));
    const X = new Float32Array(rows.length * 6);
    rows.forEach((r, i) => X.set(feats.subarray(r * 6, r * 6 + 6), i * 6));
    const direct = gen.generate(tf.tensor3d(X, [6, 2 * 3, 6]), { mode: 'argmax' });
    expect(viaPool).toEqual(direct);
    pool.dispose();
    gen.dispose();
  });
});

describe('deduplicated graph encoding (inference)', () => {
  it('equals the dense batched encoder, with repeated, shared-prefix and short graphs', () => {
    const gen = new Generator(NB201);
    gen.loadOriginal(fixture().group('generator_state'));
    const archs = manifest().generator_case.teacher_forced_archs as string[];
    const dags: ArchDag[] = [...archs.map(nb201Dag), nb201Dag(archs[0]), { types: [0, 3, 1], edges: [[0, 1], [1, 2]] }];
    const rng = new Rng(40);
    for (let i = 0; i < 20; i++) {
      const d = nb201Dag(archs[i % 3]);
      d.types[6] = 2 + rng.int(5); // shares everything but the last op: most states are shared
      dags.push(d);
    }
    const dense = tf.tidy(() => gen.graphEncoder.graphState(dags).arraySync());
    const dedup = tf.tidy(() => gen.graphEncoder.graphState(dags, { dedupe: true }).arraySync());
    dense.forEach((row, b) => row.forEach((v, k) => expect(Math.abs(v - dedup[b][k])).toBeLessThan(1e-6)));
    gen.dispose();
  });
});

describe('other search spaces (generic over nvt and max_n)', () => {
  const MBV3 = { numVertexTypes: 29, maxNodes: 22, startType: 0, endType: 1 };
  it('builds the MBV3 generator with the original 322,478 parameters, decodes and trains on 22-vertex chains', () => {
    const gen = new Generator(MBV3, { rng: new Rng(50) });
    expect(gen.numParameters()).toBe(322478);
    const rng = new Rng(51);
    const chain = (): ArchDag => ({
      types: [0, ...Array.from({ length: 20 }, () => 2 + rng.int(27)), 1],
      edges: Array.from({ length: 21 }, (_, i) => [i, i + 1] as [number, number]),
    });
    const X = tf.tensor3d(rng.normalArray(2 * 3 * 20 * 512), [2, 60, 512]);
    const { loss } = tf.tidy(() => {
      const l = gen.loss(X, [chain(), chain()], { train: false });
      return { loss: l.loss.dataSync()[0] };
    });
    expect(Number.isFinite(loss)).toBe(true);
    const z = tf.tensor2d(rng.normalArray(3 * 56), [3, 56]);
    for (const g of gen.sample(z, { mode: 'sample', rng })) {
      expect(g.types[0]).toBe(0);
      expect(g.types.length).toBeLessThanOrEqual(22);
      for (const [a, b] of g.edges) expect(a).toBeLessThan(b);
    }
    tf.dispose([X, z]);
    gen.dispose();
  });
});

describe('trainable parameters', () => {
  it('are exactly those the loss reaches: every one gets a gradient (optimizer state covers them all)', () => {
    const gen = tinyGen(60);
    const rng = new Rng(61);
    const dags = [randomTinyDag(rng), randomTinyDag(rng)];
    const X = randX(rng, 2, 2);
    const vars = gen.trainableParameters();
    const { value, grads } = tf.variableGrads(() => gen.loss(X, dags, { train: true, rng }).loss, vars);
    expect(Object.keys(grads).length).toBe(vars.length);
    expect(gen.namedParameters().filter(([, v]) => !v.trainable).map(([n]) => n)).toContain('grue_forward.weight_ih');
    tf.dispose([value, X, ...Object.values(grads)]);
    gen.dispose();
  });
});
