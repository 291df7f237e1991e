import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { initBackend } from '@metad2a/nn';
import { TorchAdam } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ quiet: true });
});

// Expected values: torch.optim.Adam's single-tensor update written out in numpy (float64):
//   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// p gets three gradients (an exact 0 and a 1e-9 included); q gets none in step 2 (PyTorch: .grad None -> skipped).
const EXPECTED = [
  { p: [0.4900000009999999, -0.29000000049999997, 2.0], q: [0.99000000005] },
  { p: [0.4806782057911871, -0.29366103565460366, 1.9995084506883856], q: [0.99000000005] },
  { p: [0.4841504406730389, -0.29649102641979636, 1.9931203147293475], q: [0.9873366296702432] },
];

function run(opt: TorchAdam, params: Map<string, tf.Variable>, from: number, to: number, check = true): void {
  const gp = [[0.1, -0.2, 0.0], [0.05, 0.4, 1e-9], [-0.3, 0.0, 3.0]];
  const gq = [[2.0], null, [-1.0]];
  for (let t = from; t < to; t++) {
    const grads = new Map<string, tf.Tensor>([['p', tf.tensor1d(gp[t])]]);
    if (gq[t]) grads.set('q', tf.tensor1d(gq[t]!));
    opt.step(params, grads);
    tf.dispose([...grads.values()]);
    if (!check) continue;
    const p = params.get('p')!.dataSync();
    const q = params.get('q')!.dataSync();
    EXPECTED[t].p.forEach((x, i) => expect(p[i]).toBeCloseTo(x, 6));
    expect(q[0]).toBeCloseTo(EXPECTED[t].q[0], 6);
  }
}

// Both update paths: the fused native one (where the OpenBLAS addon runs) and the tfjs composition.
for (const mode of ['fused', 'tfjs'] as const) describe(`TorchAdam (${mode})`, () => {
  beforeEach(() => {
    if (mode === 'tfjs') process.env.METAD2A_FUSED = 'off';
  });
  afterEach(() => {
    delete process.env.METAD2A_FUSED;
  });

  it("matches PyTorch's Adam step by step, skipping parameters without a gradient", () => {
    const params = new Map([
      ['p', tf.variable(tf.tensor1d([0.5, -0.3, 2.0]))],
      ['q', tf.variable(tf.tensor1d([1.0]))],
    ]);
    const before = tf.memory().numTensors;
    const opt = new TorchAdam(0.01);
    run(opt, params, 0, 3);
    expect(opt.iterations).toBe(3);
    expect(opt.trained).toEqual(['p', 'q']);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...params.values()]);
  });

  it('saves and restores its state by parameter name (per-parameter step counts included)', async () => {
    const mk = () =>
      new Map([
        ['p', tf.variable(tf.tensor1d([0.5, -0.3, 2.0]))],
        ['q', tf.variable(tf.tensor1d([1.0]))],
      ]);
    const a = mk();
    const optA = new TorchAdam(0.01);
    run(optA, a, 0, 2, false);
    const state = await optA.stateDict();
    expect(state.get('optimizer.step.p')!.data[0]).toBe(2);
    expect(state.get('optimizer.step.q')!.data[0]).toBe(1);
    const b = mk();
    b.get('p')!.assign(a.get('p')!);
    b.get('q')!.assign(a.get('q')!);
    const optB = new TorchAdam(0.01);
    optB.loadState(state, b, 'ck.json');
    run(optB, b, 2, 3);
    expect(() => optB.loadState(new Map([...state, ['optimizer.m.zzz', { shape: [1], data: Float32Array.of(0) }]]), b, 'ck.json')).toThrow(/ck\.json, field 'optimizer\.m\.zzz'/);
    const bad = new Map(state);
    bad.set('optimizer.v.p', { shape: [2], data: new Float32Array(2) });
    expect(() => optB.loadState(bad, b, 'ck.json')).toThrow(/shape \[2\] does not match/);
    expect(() => optB.loadState(new Map(), b, 'ck.json')).toThrow(/no optimizer state/);
    for (const o of [optA, optB]) o.dispose();
    tf.dispose([...a.values(), ...b.values()]);
  });
});
