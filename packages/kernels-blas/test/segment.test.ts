import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { compare, rand, runOn, setup, TOL } from './helpers.js';

beforeAll(async () => {
  const s = await setup();
  expect(s.active, s.reason).toBe(true);
});

describe('UnsortedSegmentSum (gather gradient)', () => {
  it('hand-derived sums; ids outside [0, numSegments) are dropped', async () => {
    const [r] = await runOn('wasm', () =>
      tf.unsortedSegmentSum(tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [5, 2]), tf.tensor1d([2, 0, 2, -1, 3], 'int32'), 3),
    );
    await tf.setBackend('wasm');
    expect(r.shape).toEqual([3, 2]);
    expect(Array.from(r.values)).toEqual([3, 4, 0, 0, 1 + 5, 2 + 6]);
  });

  it('int32 values keep their dtype', async () => {
    const [r] = await runOn('wasm', () => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4], 'int32'), tf.tensor1d([1, 1, 0, 1], 'int32'), 2));
    await tf.setBackend('wasm');
    expect(r.dtype).toBe('int32');
    expect(Array.from(r.values)).toEqual([3, 7]);
  });

  it('matches the cpu backend on random data', async () => {
    const ids = Int32Array.from({ length: 50 }, (_, i) => (i * 7) % 13);
    const err = await compare(() => tf.unsortedSegmentSum(tf.tensor(rand(50 * 6, 1), [50, 6]), tf.tensor1d(ids, 'int32'), 13));
    expect(err).toBeLessThan(TOL);
  });

  it('tf.grad through gather (axis 0 and 1, repeated indices) matches', async () => {
    const idx = [3, 1, 3, 0, 5, 3];
    for (const axis of [0, 1]) {
      const err = await compare(() => {
        const params = tf.tensor(rand(6 * 4 * 3, 2), axis === 0 ? [6, 4, 3] : [4, 6, 3]);
        const r = tf.tensor(rand(6 * 4 * 3, 3), axis === 0 ? [6, 4, 3] : [4, 6, 3]);
        return tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.gather(p, tf.tensor1d(idx, 'int32'), axis), r)))(params);
      });
      expect(err).toBeLessThan(TOL);
    }
  });
});
