// A small conv network trained for a few SGD steps on fixed random data gives the same loss curve
// on wasm + OpenBLAS as on the stock cpu backend.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { rand, setup } from './helpers.js';

beforeAll(async () => {
  const s = await setup();
  expect(s.active, s.reason).toBe(true);
});

async function train(backend: string): Promise<number[]> {
  await tf.setBackend(backend);
  const B = 8;
  const x = tf.tensor4d(rand(B * 12 * 12 * 3, 11), [B, 12, 12, 3]);
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: B }, (_, i) => i % 5), 'int32'), 5);
  const tokens = tf.tensor1d([0, 3, 3, 7, 1, 9, 2, 3], 'int32');
  const v = (shape: number[], seed: number, scale: number) => tf.variable(tf.mul(tf.tensor(rand(shape.reduce((a, b) => a * b, 1), seed), shape), scale));
  const w1 = v([3, 3, 3, 8], 1, 0.3);
  const b1 = v([8], 2, 0.1);
  const wd = v([3, 3, 8, 1], 3, 0.3); // depthwise
  const w2 = v([1, 1, 8, 12], 4, 0.3);
  const emb = v([10, 12], 5, 0.3); // embedding lookup: gather, whose gradient is UnsortedSegmentSum
  const wf = v([6 * 6 * 12, 5], 6, 0.05);
  const bf = v([5], 7, 0.1);
  const opt = tf.train.sgd(0.05);
  const losses: number[] = [];
  for (let step = 0; step < 6; step++) {
    const loss = opt.minimize(() => {
      let h: tf.Tensor4D = tf.relu(tf.add(tf.conv2d(x, w1 as tf.Variable<tf.Rank.R4>, 1, 'same'), b1));
      h = tf.relu(tf.depthwiseConv2d(h, wd as tf.Variable<tf.Rank.R4>, 2, 'same'));
      h = tf.conv2d(h, w2 as tf.Variable<tf.Rank.R4>, 1, 'valid');
      h = tf.add(h, tf.reshape(tf.gather(emb, tokens), [B, 1, 1, 12]));
      const logits = tf.add(tf.matMul(tf.reshape(tf.relu(h), [B, -1]), wf), bf);
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    }, true);
    losses.push(loss!.dataSync()[0]);
    loss!.dispose();
  }
  tf.dispose([x, labels, tokens, w1, b1, wd, w2, emb, wf, bf]);
  opt.dispose();
  return losses;
}

it('loss curve on wasm + OpenBLAS equals the cpu backend', async () => {
  const ours = await train('wasm');
  const ref = await train('cpu');
  await tf.setBackend('wasm');
  if (process.env.SHOW_ERR) console.log('losses', ours, ref);
  expect(ref[5]).toBeLessThan(ref[0]); // it does learn
  for (let i = 0; i < ref.length; i++) expect(Math.abs(ours[i] - ref[i]) / Math.abs(ref[i])).toBeLessThan(1e-5);
});
