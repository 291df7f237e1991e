import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, hashString, InputError, Rng, writeFileAtomic } from '@metad2a/core';
import { loadCheckpoint, saveCheckpoint } from '@metad2a/nn';
import { trainClassifier, validateRecipe, type EpochReport, type TrainRecipe, type TrainResult } from '@metad2a/arch-training';
import { indicesByClass, type ImageDataset } from '@metad2a/data-pipeline';
import { loadTaskSets, onlyUsedParameters, resolveRecipe, type ChannelStats } from '@metad2a/db-build';
import { formatNb201, Nb201Network, parseNb201, type Nb201NetConfig } from '@metad2a/search-space-201';

export const TRAINED_FORMAT = 'metad2a-trained-network';

/** What is saved with a trained network: enough to rebuild it and to preprocess images the same way. */
export interface TrainedNetworkInfo {
  format: typeof TRAINED_FORMAT;
  space: 'nb201';
  arch: string;
  config: Nb201NetConfig;
  classes: string[];
  /** Per-channel mean/std of x/255 used to normalise inputs (NHWC RGB). */
  normalization: ChannelStats;
  recipe: TrainRecipe;
  testAccuracy: number;
  trainAccuracy: number;
  trainImages: number;
  testImages: number;
  dataset: string;
  seed: number;
}

export interface TrainArchOptions {
  space: string;
  arch: string;
  dataset: ImageDataset;
  /** A recipe id (arch-training's or db-build's cheap ones) or a full recipe. */
  recipe: string | TrainRecipe;
  /** Recipe fields to override (epochs, width, ...). */
  overrides?: Partial<Omit<TrainRecipe, 'id'>>;
  /** Use only these class indices (default: all). */
  classes?: number[];
  /** Held-out share of each class's images for the test accuracy (default 0.2). */
  testFraction?: number;
  seed?: number;
  onEpoch?: (r: EpochReport) => void;
}

export interface TrainArchResult {
  net: Nb201Network;
  info: TrainedNetworkInfo;
  result: TrainResult;
}

/**
 * Train an architecture of the search space from scratch on an image dataset: per class, a seeded
 * split into held-out test images (testFraction) and training images (capped by the recipe's
 * maxTrainPerClass), images resized to the recipe's input size and normalised with the training
 * images' channel statistics; the recipe's SGD schedule; top-1 on the held-out images.
 */
export async function trainArchOnDataset(o: TrainArchOptions): Promise<TrainArchResult> {
  if (o.space !== 'nb201') throw new ConfigError('space', `training '${o.space}' networks is not available in this build`, 'the trainable MobileNetV3 subnet is not finished; use --space nb201');
  const arch = parseNb201(o.arch);
  const base = typeof o.recipe === 'string' ? resolveRecipe(o.recipe) : o.recipe;
  const recipe: TrainRecipe = { ...base, ...o.overrides, id: o.overrides && Object.keys(o.overrides).length ? `${base.id}+custom` : base.id };
  validateRecipe(recipe);
  const seed = o.seed ?? 0;
  const testFraction = o.testFraction ?? 0.2;
  if (!(testFraction > 0 && testFraction < 1)) throw new ConfigError('test-fraction', `${testFraction}`, 'a number between 0 and 1');
  const ds = o.dataset;
  const classes = o.classes ?? ds.classes.map((_, i) => i);
  if (classes.length < 2) throw new ConfigError('classes', `${classes.length} class`, 'train on at least 2 classes');
  const byClass = indicesByClass(ds.labels, ds.classes.length);
  const rng = new Rng(seed).fork('split');
  const train: number[][] = [];
  const test: number[][] = [];
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c >= ds.classes.length) throw new ConfigError('classes', `class ${c} is not in 0..${ds.classes.length - 1}`);
    const idx = byClass[c];
    if (idx.length < 2) throw new InputError({ file: ds.source[0] }, `class '${ds.classes[c]}' has ${idx.length} image; training needs at least 2 per class (one held out)`, 'add images to the class');
    const perm = rng.fork(c).permutation(idx.length).map((k) => idx[k]);
    const nTest = Math.max(1, Math.round(idx.length * testFraction));
    test.push(perm.slice(0, nTest).sort((a, b) => a - b));
    const rest = perm.slice(nTest);
    train.push((recipe.maxTrainPerClass > 0 ? rest.slice(0, recipe.maxTrainPerClass) : rest).sort((a, b) => a - b));
  }
  const sets = await loadTaskSets(ds, train, test, recipe.inputSize);
  const net = new Nb201Network(arch, { C: recipe.width, N: recipe.depth, inputSize: recipe.inputSize, numClasses: classes.length, inChannels: 3, rng: new Rng(`init:${seed}:${formatNb201(arch)}`) });
  const trainable = onlyUsedParameters(net, recipe.inputSize);
  let result: TrainResult;
  try {
    result = trainClassifier(trainable, sets.train, sets.test, recipe, { seed: hashString(`train:${seed}:${formatNb201(arch)}`), onEpoch: o.onEpoch });
  } catch (e) {
    net.dispose();
    throw e;
  }
  const info: TrainedNetworkInfo = {
    format: TRAINED_FORMAT,
    space: 'nb201',
    arch: formatNb201(arch),
    config: net.config,
    classes: classes.map((c) => ds.classes[c]),
    normalization: sets.stats,
    recipe,
    testAccuracy: result.testAccuracy,
    trainAccuracy: result.trainAccuracy,
    trainImages: result.trainImages,
    testImages: result.testImages,
    dataset: ds.name,
    seed,
  };
  return { net, info, result };
}

/** Save a trained network as a folder: network.json (+ its blob, our checkpoint format) and info.json. */
export function saveTrainedNetwork(dir: string, net: Nb201Network, info: TrainedNetworkInfo): void {
  fs.mkdirSync(dir, { recursive: true });
  saveCheckpoint(path.join(dir, 'network.json'), net, { kind: 'trained-network', config: info.config, arch: info.arch });
  writeFileAtomic(path.join(dir, 'info.json'), `${JSON.stringify(info, null, 2)}\n`);
}

/** Load a folder written by saveTrainedNetwork (strict: every parameter present with its shape). */
export function loadTrainedNetwork(dir: string): { net: Nb201Network; info: TrainedNetworkInfo } {
  const file = path.join(dir, 'info.json');
  if (!fs.existsSync(file)) throw new InputError({ file: dir }, 'not a trained network folder (no info.json)', "make one with 'metad2a train-arch --out <dir>'");
  let info: TrainedNetworkInfo;
  try {
    info = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainedNetworkInfo;
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
  if (info.format !== TRAINED_FORMAT) throw new InputError({ file, field: 'format' }, `expected '${TRAINED_FORMAT}', got '${String(info.format)}'`);
  if (info.space !== 'nb201') throw new InputError({ file, field: 'space' }, `unsupported space '${String(info.space)}'`);
  const net = new Nb201Network(parseNb201(info.arch, { file, field: 'arch' }), { ...info.config });
  const ckpt = path.join(dir, 'network.json');
  try {
    net.loadStateDict(loadCheckpoint(ckpt).state, { strict: true, source: ckpt });
  } catch (e) {
    net.dispose();
    throw e;
  }
  return { net, info };
}
