import * as tf from '@tensorflow/tfjs';
import { MetaD2AError, Rng } from '@metad2a/core';
import { augmentBatch, checkImageSet, gatherImages, type ImageSet } from './images.js';
import { cosineLr, SgdMomentum } from './sgd.js';
import { validateRecipe, type TrainRecipe } from './recipe.js';

/** What the trainer needs of a network: logits from NHWC images, and its trainable variables. */
export interface TrainableNetwork {
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
  trainableParameters(): tf.Variable[];
}

export interface EpochReport {
  epoch: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  seconds: number;
}

export interface TrainResult {
  testAccuracy: number;
  trainLoss: number;
  trainAccuracy: number;
  epochs: EpochReport[];
  seconds: number;
  trainImages: number;
  testImages: number;
}

/** Top-1 accuracy in percent, evaluated in inference mode. */
export function evaluateAccuracy(net: TrainableNetwork, set: ImageSet, batchSize = 256): number {
  const per = set.height * set.width * set.channels;
  let correct = 0;
  for (let start = 0; start < set.n; start += batchSize) {
    const end = Math.min(set.n, start + batchSize);
    const pred = tf.tidy(() => {
      const x = tf.tensor4d(set.x.subarray(start * per, end * per), [end - start, set.height, set.width, set.channels]);
      return net.forward(x, false).argMax(-1);
    });
    const p = pred.dataSync();
    pred.dispose();
    for (let i = 0; i < p.length; i++) if (p[i] === set.labels[start + i]) correct++;
  }
  return (100 * correct) / set.n;
}

/**
 * Train `net` on `train` with the recipe's SGD + cosine schedule and augmentation, then report top-1 on
 * `test`. Seeded: the batch order and augmentation come from `seed`. Weight decay applies to every
 * trainable variable, as NAS-Bench-201's training does.
 */
export function trainClassifier(
  net: TrainableNetwork,
  train: ImageSet,
  test: ImageSet,
  recipe: TrainRecipe,
  options: { seed?: number; onEpoch?: (r: EpochReport) => void } = {},
): TrainResult {
  validateRecipe(recipe);
  checkImageSet(train, 'train');
  checkImageSet(test, 'test');
  const rng = new Rng(options.seed ?? 0);
  const opt = new SgdMomentum(recipe.momentum, recipe.weightDecay, recipe.nesterov);
  const vars = net.trainableParameters();
  const stepsPerEpoch = Math.ceil(train.n / recipe.batchSize);
  const totalSteps = stepsPerEpoch * recipe.epochs;
  const warmupSteps = recipe.warmupEpochs * stepsPerEpoch;
  const t0 = Date.now();
  const epochs: EpochReport[] = [];
  let step = 0;
  try {
    for (let epoch = 0; epoch < recipe.epochs; epoch++) {
      const te = Date.now();
      const order = rng.permutation(train.n);
      let lossSum = 0;
      let correct = 0;
      let lr = 0;
      for (let b = 0; b < stepsPerEpoch; b++) {
        const idx = order.slice(b * recipe.batchSize, (b + 1) * recipe.batchSize);
        const batch = gatherImages(train, idx);
        augmentBatch(batch.x, idx.length, train.height, train.width, train.channels, recipe.augmentPad, recipe.augmentFlip, rng);
        lr = cosineLr(recipe.lr, step, totalSteps, warmupSteps);
        const { loss, hits } = trainStep(net, vars, opt, batch.x, batch.labels, idx.length, train, lr);
        lossSum += loss * idx.length;
        correct += hits;
        step++;
      }
      const report: EpochReport = {
        epoch: epoch + 1,
        lr,
        trainLoss: lossSum / train.n,
        trainAccuracy: (100 * correct) / train.n,
        seconds: (Date.now() - te) / 1000,
      };
      if (!Number.isFinite(report.trainLoss)) {
        // an outcome of the recipe on this data, not a bug: one line from the CLIs
        throw new MetaD2AError('E_DIVERGED', `training with recipe '${recipe.id}' diverged at epoch ${epoch + 1} (loss ${report.trainLoss}); a lower learning rate (--lr) may help`);
      }
      epochs.push(report);
      options.onEpoch?.(report);
    }
  } finally {
    opt.dispose();
  }
  const last = epochs[epochs.length - 1];
  return {
    testAccuracy: evaluateAccuracy(net, test),
    trainLoss: last.trainLoss,
    trainAccuracy: last.trainAccuracy,
    epochs,
    seconds: (Date.now() - t0) / 1000,
    trainImages: train.n,
    testImages: test.n,
  };
}

function trainStep(
  net: TrainableNetwork,
  vars: tf.Variable[],
  opt: SgdMomentum,
  xData: Float32Array,
  labels: Int32Array,
  n: number,
  shape: ImageSet,
  lr: number,
): { loss: number; hits: number } {
  const x = tf.tensor4d(xData, [n, shape.height, shape.width, shape.channels]);
  const y = tf.tensor1d(labels, 'int32');
  let predicted: tf.Tensor | null = null;
  try {
    const { value, grads } = tf.variableGrads(() => {
      const logits = net.forward(x, true);
      predicted = tf.keep(logits.argMax(-1));
      return tf.losses.softmaxCrossEntropy(tf.oneHot(y, shape.numClasses), logits) as tf.Scalar;
    }, vars);
    const loss = value.dataSync()[0];
    value.dispose();
    // Weights on cell edges that cannot reach the output get no gradient (as in PyTorch): skip them.
    opt.step(new Map(vars.filter((v) => grads[v.name] !== undefined).map((v) => [v, grads[v.name]])), lr);
    for (const g of Object.values(grads)) g.dispose();
    const p = (predicted as unknown as tf.Tensor).dataSync();
    let hits = 0;
    for (let i = 0; i < n; i++) if (p[i] === labels[i]) hits++;
    return { loss, hits };
  } finally {
    x.dispose();
    y.dispose();
    (predicted as tf.Tensor | null)?.dispose();
  }
}
