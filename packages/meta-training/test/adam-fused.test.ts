import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Rng, type ArchDag } from '@metad2a/core';
import { initBackend, fusedOps, fusedOpsAvailable, readF32Bundle, type Module } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { nb201Space } from '@metad2a/search-space-201';
import { TorchAdam } from '../src/index.js';

// The fused Adam (one native call over all parameters, in place) against the tfjs composition
// (METAD2A_FUSED=off) on the real models with the original's weights and the parity fixture's
// real inputs: parameters and moments after several steps must agree.
const here = path.dirname(fileURLToPath(import.meta.url));
const MANIFEST = path.resolve(here, '../../../../shared/fixtures/metad2a-parity/manifest.json');

beforeAll(async () => {
  await initBackend({ quiet: true });
});
afterEach(() => {
  delete process.env.METAD2A_FUSED;
});

/** Runs `fn` with the fused host ops off (the tfjs compositions). */
function unfused<T>(fn: () => T): T {
  process.env.METAD2A_FUSED = 'off';
  try {
    return fn();
  } finally {
    delete process.env.METAD2A_FUSED;
  }
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

interface Case {
  name: string;
  make: () => Module;
  loss: (m: Module, step: number) => tf.Scalar;
}

const fixture = () => readF32Bundle(MANIFEST);
const manifest = () => JSON.parse(fs.readFileSync(MANIFEST, 'utf8'));
const dags = (): ArchDag[] => (manifest().generator_case.teacher_forced_archs as string[]).map((s) => nb201Space.toDag(nb201Space.parse(s)));
const input = (key: string) => {
  const a = fixture().get(key);
  return tf.tensor3d(a.data, a.shape as [number, number, number]);
};

const CASES: Case[] = [
  {
    name: 'generator (304,200 parameters, 73 tensors; train-mode noise)',
    make: () => {
      const g = new Generator(nb201Space);
      g.loadOriginal(fixture().group('generator_state'));
      return g;
    },
    loss: (m, step) => {
      const X = input('generator_case/input_X');
      const l = (m as Generator).loss(X, dags(), { beta: 0.005, train: true, rng: new Rng(`noise:${step}`) });
      X.dispose();
      tf.dispose([l.recon, l.kld]);
      return l.loss;
    },
  },
  {
    name: 'predictor (4,020,361 parameters: the threaded path)',
    make: () => {
      const p = new Predictor(nb201Space);
      p.loadOriginal(fixture().group('predictor_state'));
      return p;
    },
    loss: (m) => {
      const X = input('predictor_case/input_X');
      const d = dags().slice(0, X.shape[0]);
      const l = (m as Predictor).loss(X, d, d.map((_, i) => 0.01 * (i - 1)));
      X.dispose();
      return l;
    },
  },
];

describe.runIf(fusedOpsAvailable())('fused TorchAdam', () => {
  for (const c of CASES) {
    it(`updates parameters and moments as the tfjs composition does: ${c.name}`, async () => {
      expect(fusedOps()).not.toBeNull();
      const a = c.make();
      const b = c.make();
      const pa = new Map(a.namedParameters().filter(([, v]) => v.trainable));
      const pb = new Map(b.namedParameters().filter(([, v]) => v.trainable));
      const optA = new TorchAdam(1e-3, 0.9, 0.999, 1e-8);
      const optB = new TorchAdam(1e-3, 0.9, 0.999, 1e-8);
      const gradsOf = (m: Module, params: Map<string, tf.Variable>, step: number) => {
        const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
        const { value, grads } = tf.variableGrads(() => c.loss(m, step), [...params.values()]);
        value.dispose();
        return new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v)!, g]));
      };
      const tensorsBefore = tf.memory().numTensors;
      for (let step = 0; step < 4; step++) {
        // both gradients by the same (fused) forward/backward: only the optimiser differs
        const ga = gradsOf(a, pa, step);
        const gb = gradsOf(b, pb, step);
        if (step === 2) {
          // a step without a gradient for some parameters: both skip them (PyTorch's None grad)
          for (const n of [...ga.keys()].slice(0, 5)) {
            ga.get(n)!.dispose();
            gb.get(n)!.dispose();
            ga.delete(n);
            gb.delete(n);
          }
        }
        optA.step(pa, ga);
        unfused(() => optB.step(pb, gb));
        tf.dispose([...ga.values(), ...gb.values()]);
      }
      expect(tf.memory().numTensors).toBe(tensorsBefore + 2 * 2 * optA.trained.length);
      let worst = 0;
      let moved = 0;
      for (const [n, v] of pa) expect(maxRel(v.dataSync(), pb.get(n)!.dataSync())).toBeLessThan(1e-6);
      const sa = await optA.stateDict();
      const sb = await optB.stateDict();
      expect([...sa.keys()]).toEqual([...sb.keys()]);
      for (const [k, x] of sa) {
        const r = maxRel(x.data, sb.get(k)!.data);
        worst = Math.max(worst, r);
        expect(r, k).toBeLessThan(1e-6);
      }
      // the update did something: parameters moved from the original weights
      const fresh = c.make();
      const freshParams = new Map(fresh.namedParameters());
      for (const [n, v] of pa) if (maxRel(v.dataSync(), freshParams.get(n)!.dataSync()) > 1e-6) moved++;
      expect(moved).toBeGreaterThan(optA.trained.length / 2);
      for (const o of [optA, optB]) o.dispose();
      for (const m of [a, b, fresh]) m.dispose();
      console.log(`${c.name}: worst relative difference of parameters/moments ${worst.toExponential(1)}`);
    });
  }

  it('never writes into a buffer another tensor shares (copy on write)', () => {
    const init = tf.tensor1d([0.5, -0.3, 2.0]);
    const p = tf.variable(init); // shares init's buffer
    const alias = p.clone(); // the aliasing Identity: another reference to the same buffer
    const params = new Map([['p', p]]);
    const opt = new TorchAdam(0.01);
    const g = tf.tensor1d([0.1, -0.2, 0.0]);
    opt.step(params, new Map([['p', g]]));
    expect([...init.dataSync()]).toEqual([0.5, -0.3, 2.0].map(Math.fround));
    expect([...alias.dataSync()]).toEqual([0.5, -0.3, 2.0].map(Math.fround));
    // PyTorch's first step: p -= lr * g / (|g| + eps) (hand-derived)
    const got = p.dataSync();
    [0.49, -0.29, 2.0].forEach((x, i) => expect(got[i]).toBeCloseTo(x, 6));
    opt.dispose();
    tf.dispose([init, p, alias, g]);
  });
});
