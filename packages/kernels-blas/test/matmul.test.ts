import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { compare, rand, runOn, setup, TOL } from './helpers.js';

const t = (shape: number[], seed: number) => tf.tensor(rand(shape.reduce((a, b) => a * b, 1), seed), shape);

beforeAll(async () => {
  const s = await setup();
  expect(s.active, s.reason).toBe(true);
});

describe('BatchMatMul', () => {
  const cases: Array<[number[], number[], boolean, boolean]> = [
    [[1, 1], [1, 1], false, false],
    [[3, 5], [5, 7], false, false],
    [[5, 3], [5, 7], true, false],
    [[3, 5], [7, 5], false, true],
    [[5, 3], [7, 5], true, true],
    [[17, 33], [33, 9], false, false],
    [[4, 3, 5], [4, 5, 7], false, false],
    [[4, 5, 3], [4, 7, 5], true, true],
    [[4, 3, 5], [1, 5, 7], false, false], // b broadcast (folded into one sgemm)
    [[4, 3, 5], [1, 7, 5], false, true],
    [[1, 3, 5], [4, 5, 7], false, false], // a broadcast
    [[1, 5, 3], [4, 5, 7], true, false],
    [[2, 3, 4, 6], [2, 3, 6, 5], false, false],
    [[64, 20, 128], [64, 128, 20], false, false], // attention-like
    [[640, 512], [512, 56], false, false], // set-encoder projection
    [[32, 512], [1024, 512], false, true], // few rows, wide: split by columns with 2 threads
    [[512, 32], [512, 1024], true, false],
    [[3, 0], [0, 4], false, false], // empty inner dimension: zeros
  ];
  for (const [as, bs, ta, tb] of cases) {
    it(`[${as}]${ta ? 'ᵀ' : ''} x [${bs}]${tb ? 'ᵀ' : ''} matches the cpu backend`, async () => {
      const err = await compare(() => tf.matMul(t(as, 1), t(bs, 2), ta, tb));
      expect(err).toBeLessThan(TOL);
    });
  }

  it('broadcasts batch dims both ways ([2,1,3,4] x [1,3,4,5]) like an explicit tile', async () => {
    const a = rand(2 * 3 * 4, 3);
    const b = rand(3 * 4 * 5, 4);
    const [ours] = await runOn('wasm', () => tf.matMul(tf.tensor(a, [2, 1, 3, 4]), tf.tensor(b, [1, 3, 4, 5])));
    const [ref] = await runOn('cpu', () =>
      tf.matMul(tf.tile(tf.tensor(a, [2, 1, 3, 4]), [1, 3, 1, 1]), tf.tile(tf.tensor(b, [1, 3, 4, 5]), [2, 1, 1, 1])),
    );
    await tf.setBackend('wasm');
    expect(ours.shape).toEqual([2, 3, 3, 5]);
    let worst = 0;
    for (let i = 0; i < ref.values.length; i++) worst = Math.max(worst, Math.abs(ours.values[i] - ref.values[i]));
    expect(worst).toBeLessThan(1e-5);
  });

  it('a hand-computed product', async () => {
    const [r] = await runOn('wasm', () => tf.matMul(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]), tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2])));
    await tf.setBackend('wasm');
    expect(Array.from(r.values)).toEqual([4, 5, 10, 11]);
  });

  it('gradients through matMul (all transpose cases) match', async () => {
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const as = ta ? [2, 7, 5] : [2, 5, 7];
      const bs = tb ? [2, 6, 7] : [2, 7, 6];
      const err = await compare(() => {
        const r = t([2, 5, 6], 9);
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, ta, tb), r)));
        return g([t(as, 5), t(bs, 6)]);
      });
      expect(err).toBeLessThan(TOL);
    }
  });
});

describe('_FusedMatMul', () => {
  const acts = ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'sigmoid'] as const;
  for (const activation of acts) {
    it(`bias + ${activation} matches`, async () => {
      const err = await compare(() =>
        tf.fused.matMul({ a: t([3, 6, 9], 1), b: t([3, 9, 5], 2), bias: t([5], 3), activation, leakyreluAlpha: 0.3 }),
      );
      expect(err).toBeLessThan(TOL);
    });
  }

  it('prelu with per-column weights, scalar / full / broadcast biases, transposes', async () => {
    const cases: Array<() => tf.Tensor> = [
      () => tf.fused.matMul({ a: t([6, 9], 1), b: t([9, 5], 2), bias: t([5], 3), activation: 'prelu', preluActivationWeights: t([5], 4) }),
      () => tf.fused.matMul({ a: t([6, 9], 1), b: t([9, 5], 2), bias: tf.scalar(0.25), activation: 'relu' }),
      () => tf.fused.matMul({ a: t([6, 9], 1), b: t([9, 5], 2), bias: t([6, 5], 5) }),
      () => tf.fused.matMul({ a: t([6, 9], 1), b: t([9, 5], 2), bias: t([6, 1], 6), activation: 'elu' }),
      () => tf.fused.matMul({ a: t([2, 9, 6], 1), b: t([2, 5, 9], 2), transposeA: true, transposeB: true, bias: t([5], 7), activation: 'relu' }),
    ];
    for (const c of cases) expect(await compare(c)).toBeLessThan(TOL);
  });

  it('gradient path (linear + bias, the customGrad tfjs uses) matches', async () => {
    const err = await compare(() => {
      const r = t([8, 5], 9);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
        tf.sum(tf.mul(tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias }), r)),
      );
      return g([t([8, 11], 1), t([11, 5], 2), t([5], 3)]);
    });
    expect(err).toBeLessThan(TOL);
  });
});
