import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MetaD2AError, Rng } from '@metad2a/core';
import { fusedOps, fusedOpsAvailable, initBackend, Linear, Module } from '@metad2a/nn';
import { augmentBatch, cosineLr, normalizeImages, SgdMomentum, trainClassifier, validateRecipe, NB201_FULL, type ImageSet, type TrainRecipe } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const subset = path.resolve(here, '../../../../shared/data/cifar10-subset');

/** Two CIFAR-10 classes from the shared subset, read straight from the binary records (independent of data-pipeline). */
function readTwoClasses(file: string, a: number, b: number): ImageSet {
  const buf = fs.readFileSync(file);
  const imgs: number[] = [];
  const labels: number[] = [];
  const u8: number[] = [];
  for (let i = 0; i < buf.length / 3073; i++) {
    const label = buf[i * 3073];
    if (label !== a && label !== b) continue;
    imgs.push(i);
    labels.push(label === a ? 0 : 1);
    const planes = buf.subarray(i * 3073 + 1, (i + 1) * 3073);
    for (let p = 0; p < 1024; p++) u8.push(planes[p], planes[1024 + p], planes[2048 + p]);
  }
  const x = normalizeImages(Uint8Array.from(u8), 3, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]);
  return { x, n: imgs.length, height: 32, width: 32, channels: 3, labels: Int32Array.from(labels), numClasses: 2 };
}

class LinearClassifier extends Module {
  readonly fc: Linear;
  constructor(initSeed = 0) {
    super();
    this.fc = this.addModule('fc', new Linear(32 * 32 * 3, 2, { rng: new Rng(`init:${initSeed}`) }));
  }
  forward(x: tf.Tensor4D): tf.Tensor2D {
    return this.fc.forward(x.reshape([x.shape[0], -1])) as tf.Tensor2D;
  }
}

beforeAll(async () => {
  await initBackend({ quiet: true });
});

describe('SGD with Nesterov momentum', () => {
  afterEach(() => {
    delete process.env.METAD2A_FUSED;
  });
  it.each(['on', 'off'])('follows torch.optim.SGD on f(p) = p^2 (values derived by hand; host update %s)', (mode) => {
    process.env.METAD2A_FUSED = mode;
    const p = tf.variable(tf.scalar(1));
    const opt = new SgdMomentum(0.9, 0.1, true);
    const out: number[] = [];
    for (let i = 0; i < 2; i++) {
      const g = tf.tidy(() => p.mul(2));
      opt.step(new Map([[p, g]]), 0.1);
      g.dispose();
      out.push(p.dataSync()[0]);
    }
    // step 1: g = 2 + 0.1 = 2.1, buf = 2.1, update = 2.1 + 0.9*2.1 = 3.99 -> p = 0.601
    // step 2: g = 1.202 + 0.0601 = 1.2621, buf = 1.89 + 1.2621 = 3.1521, update = 4.09899 -> p = 0.191101
    expect(out[0]).toBeCloseTo(0.601, 6);
    expect(out[1]).toBeCloseTo(0.191101, 6);
    opt.dispose();
    p.dispose();
  });
  it.each([true, false])('the host update equals the tensor update over 5 steps (nesterov %s, 3 shapes)', (nesterov) => {
    const rng = new Rng(3);
    const shapes = [[4, 3, 3, 2], [7], [5, 6]];
    const init = shapes.map((s) => Float32Array.from(rng.normalArray(s.reduce((a, b) => a * b, 1))));
    const gradsAt = Array.from({ length: 5 }, () => init.map((v) => Float32Array.from(rng.normalArray(v.length))));
    const finals = ['on', 'off'].map((mode) => {
      process.env.METAD2A_FUSED = mode;
      // 'on' takes the host path wherever the addon is built (CI builds it)
      expect(fusedOps() !== null).toBe(mode === 'on' && fusedOpsAvailable());
      const ps = shapes.map((s, i) => tf.variable(tf.tensor(init[i], s)));
      const opt = new SgdMomentum(0.9, 5e-4, nesterov);
      for (const [t, gs] of gradsAt.entries()) {
        const grads = new Map(ps.map((p, i) => [p, tf.tensor(gs[i], shapes[i])] as [tf.Variable, tf.Tensor]));
        opt.step(grads, 0.1 / (t + 1));
        tf.dispose([...grads.values()]);
      }
      const out = ps.map((p) => Array.from(p.dataSync()));
      opt.dispose();
      tf.dispose(ps);
      return out;
    });
    finals[0].forEach((v, i) => v.forEach((x, j) => expect(x).toBeCloseTo(finals[1][i][j], 5)));
  });
  it('cosine schedule starts at base, ends at min, halves in the middle', () => {
    expect(cosineLr(0.1, 0, 100)).toBeCloseTo(0.1, 10);
    expect(cosineLr(0.1, 50, 100)).toBeCloseTo(0.05, 10);
    expect(cosineLr(0.1, 100, 100)).toBeCloseTo(0, 10);
    expect(cosineLr(0.1, 0, 100, 10)).toBeCloseTo(0.01, 10);
  });
});

describe('augmentation', () => {
  it('a flip without crop mirrors rows; crops shift content and pad zeros', () => {
    const h = 2, w = 3, c = 1;
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]);
    // find a seed whose first flip decision is "mirror"
    let flipped: Float32Array | null = null;
    for (let s = 0; s < 20 && !flipped; s++) {
      const y = x.slice();
      augmentBatch(y, 1, h, w, c, 0, true, new Rng(s));
      if (y[0] === 3) flipped = y;
    }
    expect(Array.from(flipped!)).toEqual([3, 2, 1, 6, 5, 4]);
    const shifted = new Float32Array(16).fill(1);
    augmentBatch(shifted, 1, 4, 4, 1, 2, false, new Rng(5));
    const zeros = Array.from(shifted).filter((v) => v === 0).length;
    const ones = Array.from(shifted).filter((v) => v === 1).length;
    expect(zeros + ones).toBe(16);
  });
});

describe('trainClassifier on real CIFAR-10 images', () => {
  it('learns airplane vs frog well above chance and is reproducible', () => {
    const train = readTwoClasses(path.join(subset, 'train_100per_class.bin'), 0, 6);
    const test = readTwoClasses(path.join(subset, 'test_100per_class.bin'), 0, 6);
    expect(train.n).toBe(200);
    const recipe: TrainRecipe = { ...NB201_FULL, id: 'test-linear', epochs: 8, batchSize: 32, lr: 0.01, augmentPad: 0, augmentFlip: true };
    validateRecipe(recipe);
    const run = (seed: number) => {
      const net = new LinearClassifier();
      const r = trainClassifier(net, train, test, recipe, { seed });
      net.dispose();
      return r;
    };
    const before = tf.memory().numTensors;
    const a = run(1);
    expect(tf.memory().numTensors).toBe(before);
    expect(a.testAccuracy).toBeGreaterThan(70);
    expect(a.epochs[0].trainLoss).toBeGreaterThan(a.epochs[a.epochs.length - 1].trainLoss);
    // the same seed again: the same batches, augmentation and losses; another seed: other batches
    const b = run(1);
    expect(b.epochs.map((e) => e.trainLoss)).toEqual(a.epochs.map((e) => e.trainLoss));
    expect(b.testAccuracy).toBe(a.testAccuracy);
    expect(run(2).epochs[0].trainLoss).not.toBe(a.epochs[0].trainLoss);
  });
  it('reports a diverging training as one named error (a recipe outcome, not a crash)', () => {
    const train = readTwoClasses(path.join(subset, 'train_100per_class.bin'), 0, 6);
    const recipe: TrainRecipe = { ...NB201_FULL, id: 'test-too-hot', epochs: 3, batchSize: 32, lr: 1e30, augmentPad: 0, augmentFlip: false };
    const net = new LinearClassifier();
    const err = (() => {
      try {
        trainClassifier(net, train, train, recipe);
      } catch (e) {
        return e as MetaD2AError;
      }
      return null;
    })();
    net.dispose();
    expect(err).toBeInstanceOf(MetaD2AError);
    expect(err!.code).toBe('E_DIVERGED');
    expect(err!.message).toMatch(/recipe 'test-too-hot' diverged at epoch \d/);
  });
  it('rejects a broken recipe and mislabelled data by name', () => {
    expect(() => validateRecipe({ ...NB201_FULL, epochs: 0 })).toThrow(/recipe.epochs/);
    expect(() => validateRecipe({ ...NB201_FULL, lr: Infinity })).toThrow(/recipe.lr/);
    expect(() => validateRecipe({ ...NB201_FULL, momentum: 0 })).toThrow(/recipe.nesterov/);
    const empty: ImageSet = { x: new Float32Array(0), n: 0, height: 2, width: 2, channels: 3, labels: new Int32Array(0), numClasses: 2 };
    expect(() => trainClassifier(new LinearClassifier(), empty, empty, NB201_FULL)).toThrow(/train.n/);
    const bad: ImageSet = { x: new Float32Array(12), n: 1, height: 2, width: 2, channels: 3, labels: Int32Array.from([5]), numClasses: 2 };
    const net = new LinearClassifier();
    expect(() => trainClassifier(net, bad, bad, NB201_FULL)).toThrow(/train.labels.*record 0|record 0.*train.labels/);
    net.dispose();
  });
});
