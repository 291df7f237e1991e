// The same kernels registered on the cpu backend: references are computed with the stock cpu
// kernels first, then recomputed after registration.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { registerBlasKernels } from '../src/index.js';
import { rand, relErr, TOL } from './helpers.js';

const t = (shape: number[], seed: number) => tf.tensor(rand(shape.reduce((a, b) => a * b, 1), seed), shape);

const cases: Array<[string, () => tf.Tensor[]]> = [
  ['batched matMul with transposes and its gradient', () => {
    const r = t([3, 4, 6], 9);
    return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, true, false), r)))([t([3, 5, 4], 1), t([3, 5, 6], 2)]);
  }],
  ['fused matMul bias + relu', () => [tf.fused.matMul({ a: t([7, 5], 1) as tf.Tensor2D, b: t([5, 3], 2) as tf.Tensor2D, bias: t([3], 3), activation: 'relu' })],],
  ['conv2d stride 2 and both gradients', () => {
    const r = t([2, 4, 4, 5], 9);
    return tf.grads((x: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 2, 'same'), r)))([t([2, 7, 7, 3], 1), t([3, 3, 3, 5], 2)]);
  }],
  ['depthwise conv and both gradients', () => {
    const r = t([2, 7, 7, 6], 9);
    return tf.grads((x: tf.Tensor, f: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same'), r)))([t([2, 7, 7, 3], 1), t([3, 3, 3, 2], 2)]);
  }],
  ['gather gradient', () => [tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.gather(p, tf.tensor1d([2, 0, 2], 'int32')), t([3, 4], 3))))(t([5, 4], 1))]],
];

let reference: Float32Array[][] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
  reference = cases.map(([, f]) => tf.tidy(() => f().map((x) => x.dataSync() as Float32Array)));
  const s = registerBlasKernels('cpu');
  expect(s.active, s.reason).toBe(true);
  expect(s.backends).toContain('cpu');
});

for (const [i, [name, f]] of cases.entries()) {
  it(`cpu backend with OpenBLAS kernels: ${name}`, () => {
    const ours = tf.tidy(() => f().map((x) => x.dataSync() as Float32Array));
    ours.forEach((o, j) => expect(relErr(o, reference[i][j])).toBeLessThan(TOL));
  });
}

it('the cpu kernels really are ours (a stock-unsupported 4-D broadcast works)', () => {
  const y = tf.matMul(t([2, 1, 3, 4], 1), t([1, 3, 4, 5], 2));
  expect(y.shape).toEqual([2, 3, 3, 5]);
});
