// Our kernels allocate only their outputs: after tidy + dispose, the wasm backend holds exactly the
// buffers it held before (so long training runs do not grow the heap).
import * as tf from '@tensorflow/tfjs';
import { beforeAll, expect, it } from 'vitest';
import { rand, setup } from './helpers.js';

beforeAll(async () => {
  const s = await setup();
  expect(s.active, s.reason).toBe(true);
});

it('forward and gradient kernels leave no wasm buffers behind', () => {
  const x = tf.tensor4d(rand(2 * 8 * 8 * 4, 1), [2, 8, 8, 4]);
  const w = tf.tensor4d(rand(3 * 3 * 4 * 6, 2), [3, 3, 4, 6]);
  const dw = tf.tensor4d(rand(3 * 3 * 4 * 2, 3), [3, 3, 4, 2]);
  const m = tf.tensor3d(rand(3 * 5 * 7, 4), [3, 5, 7]);
  const emb = tf.tensor2d(rand(10 * 4, 5), [10, 4]);
  const ids = tf.tensor1d([1, 3, 3, 9], 'int32');
  const backend = tf.backend() as unknown as { numDataIds(): number };
  const step = () =>
    tf.tidy(() => {
      const g = tf.grads((a: tf.Tensor, f: tf.Tensor, f2: tf.Tensor, b: tf.Tensor, e: tf.Tensor) => {
        const c = tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 2, 'same');
        const d = tf.depthwiseConv2d(a as tf.Tensor4D, f2 as tf.Tensor4D, 1, 'same');
        const mm = tf.matMul(b, b, false, true);
        const fm = tf.fused.matMul({ a: tf.reshape(b, [15, 7]) as tf.Tensor2D, b: tf.transpose(tf.reshape(b, [15, 7])) as tf.Tensor2D, bias: tf.scalar(1) });
        return tf.addN([tf.sum(c), tf.sum(d), tf.sum(mm), tf.sum(fm), tf.sum(tf.gather(e, ids))]);
      })([x, w, dw, m, emb]);
      return g.map((t) => tf.sum(t));
    });
  tf.dispose(step()); // warm-up: lazily created constants
  const ids0 = backend.numDataIds();
  const tensors0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.dispose(step());
  expect(backend.numDataIds()).toBe(ids0);
  expect(tf.memory().numTensors).toBe(tensors0);
  tf.dispose([x, w, dw, m, emb, ids]);
});
