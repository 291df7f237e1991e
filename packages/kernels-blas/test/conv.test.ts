import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { compare, rand, runOn, setup, TOL } from './helpers.js';

const t = (shape: number[], seed: number) => tf.tensor(rand(shape.reduce((a, b) => a * b, 1), seed), shape);
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

beforeAll(async () => {
  const s = await setup();
  expect(s.active, s.reason).toBe(true);
});

interface Case {
  x: [number, number, number, number];
  f: [number, number];
  co: number;
  stride: number;
  pad: Pad;
  dil?: number;
}

const CASES: Case[] = [
  { x: [1, 5, 5, 1], f: [1, 1], co: 1, stride: 1, pad: 'valid' }, // batch 1, 1x1, one channel
  { x: [2, 7, 9, 3], f: [3, 3], co: 4, stride: 1, pad: 'same' }, // odd sizes
  { x: [2, 8, 8, 3], f: [3, 3], co: 5, stride: 2, pad: 'same' },
  { x: [1, 9, 7, 4], f: [3, 2], co: 3, stride: 2, pad: 'valid' },
  { x: [2, 6, 6, 8], f: [1, 1], co: 16, stride: 1, pad: 'same' }, // pointwise: plain sgemm
  { x: [2, 7, 7, 6], f: [1, 1], co: 5, stride: 2, pad: 'valid' }, // strided 1x1
  { x: [1, 11, 11, 3], f: [5, 5], co: 4, stride: 1, pad: 'same' },
  { x: [2, 6, 7, 3], f: [3, 3], co: 2, stride: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] }, // explicit padding
  { x: [8, 32, 32, 16], f: [3, 3], co: 16, stride: 1, pad: 'same' }, // several im2col chunks
];

const label = (c: Case) => `x[${c.x}] f${c.f[0]}x${c.f[1]}→${c.co} s${c.stride} ${typeof c.pad === 'string' ? c.pad : 'explicit'}${c.dil ? ` d${c.dil}` : ''}`;

describe('Conv2D and its gradients', () => {
  for (const c of CASES) {
    it(`${label(c)}: forward, dx and dw match the cpu backend`, async () => {
      const w: [number, number, number, number] = [c.f[0], c.f[1], c.x[3], c.co];
      const err = await compare(() => {
        const x = t(c.x, 1);
        const f = t(w, 2);
        const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, c.pad);
        const r = t(y.shape, 3);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)))([x, f]);
        return [y, dx, dw];
      });
      expect(err).toBeLessThan(TOL);
    });
  }

  it('dilation 2 forward matches', async () => {
    const err = await compare(() => tf.conv2d(t([2, 9, 9, 3], 1) as tf.Tensor4D, t([3, 3, 3, 4], 2) as tf.Tensor4D, 1, 'same', 'NHWC', 2));
    expect(err).toBeLessThan(TOL);
  });

  it('conv2dTranspose (Conv2DBackpropInput as a forward op) matches', async () => {
    const err = await compare(() => tf.conv2dTranspose(t([2, 4, 4, 5], 1) as tf.Tensor4D, t([3, 3, 3, 5], 2) as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'));
    expect(err).toBeLessThan(TOL);
  });

  it('fused conv2d (bias + relu / prelu / leakyrelu) matches', async () => {
    for (const activation of ['relu', 'relu6', 'prelu', 'leakyrelu', 'sigmoid'] as const) {
      const err = await compare(() =>
        tf.fused.conv2d({
          x: t([2, 7, 7, 3], 1) as tf.Tensor4D, filter: t([3, 3, 3, 6], 2) as tf.Tensor4D, strides: 1, pad: 'same',
          bias: t([6], 3), activation, preluActivationWeights: t([6], 4), leakyreluAlpha: 0.1,
        }),
      );
      expect(err).toBeLessThan(TOL);
    }
  });

  it('fused conv2d gradient (linear + bias) matches', async () => {
    const err = await compare(() => {
      const r = t([2, 4, 4, 6], 9);
      return tf.grads((x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: 2, pad: 'same', bias: b }), r)),
      )([t([2, 7, 7, 3], 1), t([3, 3, 3, 6], 2), t([6], 3)]);
    });
    expect(err).toBeLessThan(TOL);
  });

  it('a hand-computed 3x3 "same" convolution of ones', async () => {
    const [r] = await runOn('wasm', () => tf.conv2d(tf.ones([1, 3, 3, 1]) as tf.Tensor4D, tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 1, 'same'));
    await tf.setBackend('wasm');
    expect(Array.from(r.values)).toEqual([4, 6, 4, 6, 9, 6, 4, 6, 4]);
  });
});

describe('DepthwiseConv2dNative and its gradients', () => {
  const DW: Array<{ x: [number, number, number, number]; f: number; mult: number; stride: number; pad: Pad }> = [
    { x: [1, 5, 5, 1], f: 1, mult: 1, stride: 1, pad: 'valid' },
    { x: [2, 7, 9, 6], f: 3, mult: 1, stride: 1, pad: 'same' },
    { x: [2, 8, 8, 5], f: 3, mult: 2, stride: 2, pad: 'same' },
    { x: [1, 9, 7, 4], f: 5, mult: 1, stride: 2, pad: 'valid' },
    { x: [2, 16, 16, 24], f: 5, mult: 1, stride: 1, pad: 'same' }, // MBV3-like
    { x: [2, 6, 7, 3], f: 3, mult: 3, stride: 1, pad: [[0, 0], [2, 0], [1, 1], [0, 0]] },
  ];
  for (const c of DW) {
    it(`x[${c.x}] ${c.f}x${c.f} ×${c.mult} s${c.stride} ${typeof c.pad === 'string' ? c.pad : 'explicit'}: forward, dx and dw match`, async () => {
      const err = await compare(() => {
        const x = t(c.x, 1);
        const f = t([c.f, c.f, c.x[3], c.mult], 2);
        const y = tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.stride, c.pad);
        const r = t(y.shape, 3);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)),
        )([x, f]);
        return [y, dx, dw];
      });
      expect(err).toBeLessThan(TOL);
    });
  }

  it('dilation 2 forward and fused bias + relu6 match', async () => {
    expect(await compare(() => tf.depthwiseConv2d(t([2, 9, 9, 3], 1) as tf.Tensor4D, t([3, 3, 3, 2], 2) as tf.Tensor4D, 1, 'same', 'NHWC', 2))).toBeLessThan(TOL);
    expect(
      await compare(() =>
        tf.fused.depthwiseConv2d({ x: t([2, 7, 7, 4], 1) as tf.Tensor4D, filter: t([3, 3, 4, 1], 2) as tf.Tensor4D, strides: 2, pad: 'same', bias: t([4], 3), activation: 'relu6' }),
      ),
    ).toBeLessThan(TOL);
  });
});
