import * as tf from '@tensorflow/tfjs';
import { hashString, InputError, MetaD2AError, Rng } from '@metad2a/core';
import { backendInfo } from '@metad2a/nn';
import { trainClassifier, validateRecipe, type EpochReport, type ImageSet, type TrainRecipe, type TrainResult } from '@metad2a/arch-training';
import type { MetaRecord } from '@metad2a/data-pipeline';
import { loadTaskSets } from './images.js';
import type { TrainJob } from './plan.js';
import { openSourceCached } from './sources.js';
import { getTrainableSpace, type TrainableSpace } from './spaces.js';

export interface TrainJobResult {
  record: MetaRecord;
  /** Wall-clock seconds of the training and evaluation (not the image loading). */
  seconds: number;
  trainAccuracy: number;
  trainLoss: number;
  trainImages: number;
  testImages: number;
  /** tfjs backend the training ran on (e.g. 'wasm', 'tensorflow-gpu'). */
  backend: string;
}

/** The last task's image sets: the jobs of a task usually run one after another on a worker. */
let lastSets: { key: string; train: ImageSet; test: ImageSet } | null = null;

function checkJob(job: TrainJob): void {
  const bad = (field: string, problem: string): never => {
    throw new InputError({ field }, problem);
  };
  if (!job || typeof job !== 'object') bad('job', 'not an object');
  if (typeof job.arch !== 'string') bad('arch', 'missing');
  if (!job.task || !Array.isArray(job.task.classes) || job.task.classes.length < 2) bad('task.classes', 'needs at least 2 classes');
  if (!Array.isArray(job.task.train) || job.task.train.length !== job.task.classes.length) bad('task.train', 'needs one index list per class');
  if (!Array.isArray(job.task.test) || job.task.test.length !== job.task.classes.length) bad('task.test', 'needs one index list per class');
  if (!job.source || typeof job.source.spec !== 'string') bad('source', 'missing');
  if (!Number.isInteger(job.seed)) bad('seed', `not an integer: ${job.seed}`);
}

/**
 * Training a CNN needs convolution gradients, which stock tfjs-wasm lacks (kernels-blas adds them);
 * say so in one line instead of failing deep inside the first backward pass.
 */
export function assertCanTrainConvolutions(): void {
  const backend = tf.getBackend();
  if (tf.getKernel('Conv2DBackpropFilter', backend)) return;
  const blas = backendInfo()?.blas;
  throw new MetaD2AError(
    'E_BACKEND',
    `the '${backend}' backend cannot train convolutions (no Conv2DBackpropFilter kernel)${blas && !blas.active ? `; OpenBLAS kernels off: ${blas.reason}` : ''} ` +
      '(build @metad2a/kernels-blas, or choose another backend: METAD2A_BACKEND=cpu)',
  );
}

/**
 * Train one architecture on prepared image sets. `label` seeds everything: the initial weights
 * (Rng('init:' + label)) and the batch order and augmentation (trainClassifier's seed).
 */
export function trainArchitecture(
  space: TrainableSpace,
  arch: string,
  recipe: TrainRecipe,
  train: ImageSet,
  test: ImageSet,
  label: string,
  options: { onEpoch?: (r: EpochReport) => void } = {},
): TrainResult {
  assertCanTrainConvolutions();
  const net = space.build(arch, recipe, train.numClasses, new Rng(`init:${label}`));
  try {
    return trainClassifier(net, train, test, recipe, { seed: hashString(`train:${label}`), onEpoch: options.onEpoch });
  } finally {
    net.dispose();
  }
}

/**
 * Train one architecture on one task with the job's recipe and measure its top-1 accuracy on the
 * task's held-out images. Deterministic on a given backend: initial weights come from
 * (seed, task, arch), batch order and augmentation from the same through trainClassifier's seed.
 */
export async function runTrainJob(job: TrainJob, options: { onEpoch?: (r: EpochReport) => void } = {}): Promise<TrainJobResult> {
  checkJob(job);
  const space = getTrainableSpace(job.space);
  validateRecipe(job.recipe);
  const arch = space.normalize(job.arch);
  const source = await openSourceCached(job.source);
  const numClasses = source.dataset.classes.length;
  for (const c of job.task.classes) {
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw new InputError({ field: 'task.classes' }, `class ${c} is not a class of '${source.name}' (0..${numClasses - 1})`);
  }
  const size = job.recipe.inputSize;
  const key = JSON.stringify([job.source, job.task.id, job.task.train, job.task.test, size]);
  if (!lastSets || lastSets.key !== key) {
    lastSets = null; // free the previous task's images before reading the next
    const sets = await loadTaskSets(source.dataset, job.task.train, job.task.test, size);
    lastSets = { key, train: sets.train, test: sets.test };
  }
  const { train, test } = lastSets;
  const res = trainArchitecture(space, arch, job.recipe, train, test, `${job.seed}:${job.task.id}:${arch}`, options);
  const record: MetaRecord = {
    taskId: job.task.id,
    dataset: job.task.dataset,
    classes: [...job.task.classes],
    searchSpace: space.id,
    arch,
    accuracy: res.testAccuracy,
    recipe: job.recipe.id,
    seed: job.seed,
    time: new Date().toISOString(),
  };
  return {
    record,
    seconds: res.seconds,
    trainAccuracy: res.trainAccuracy,
    trainLoss: res.trainLoss,
    trainImages: res.trainImages,
    testImages: res.testImages,
    backend: backendInfo()?.name ?? tf.getBackend(),
  };
}
