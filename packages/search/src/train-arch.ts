import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, hashString, InputError, MetaD2AError, Rng, writeFileAtomic } from '@metad2a/core';
import { loadCheckpoint, saveCheckpoint } from '@metad2a/nn';
import { trainClassifier, validateRecipe, type EpochReport, type TrainRecipe, type TrainResult } from '@metad2a/arch-training';
import { indicesByClass, type ImageDataset } from '@metad2a/data-pipeline';
import {
  checkRecipeForSpace,
  defaultRecipeFor,
  getTrainableSpace,
  loadTaskSets,
  resolveRecipe,
  SPACE_NAMES,
  type BuiltNetwork,
  type ChannelStats,
  type TrainableSpace,
} from '@metad2a/db-build';
import { formatOfaConfig, validateOfaConfig, type OfaConfig } from '@metad2a/search-space-mbv3';

export { defaultRecipeFor, recipesForSpace } from '@metad2a/db-build';

export const TRAINED_FORMAT = 'metad2a-trained-network';

/** A trained network: Nb201Network or OfaSubnet (named parameters, forward, parameter count). */
export type TrainedModule = BuiltNetwork['module'];

/** What is saved with a trained network: enough to rebuild it and to preprocess images the same way. */
export interface TrainedNetworkInfo {
  format: typeof TRAINED_FORMAT;
  /** 'nb201' or 'mbv3' (db-build's trainable spaces). */
  space: string;
  /** Canonical architecture string of the space (MBV3: the OFA config as compact JSON). */
  arch: string;
  /** The network's shape: NB201 {C, N, inputSize, numClasses, inChannels}; MBV3 {resolution, numClasses, widthMult, dropout}. */
  config: Record<string, unknown>;
  /** MBV3 only: the OFA config {ks, e, d, r?} as an object (the same as arch). */
  ofaConfig?: OfaConfig;
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
  /** A recipe id (arch-training's or db-build's cheap ones) or a full recipe; default: the space's default recipe. */
  recipe?: string | TrainRecipe;
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
  net: TrainedModule;
  info: TrainedNetworkInfo;
  result: TrainResult;
}

/**
 * The canonical string of `arch` in `space`. When it does not parse there but does in another space,
 * the error says which --space to pass (an OFA config given to nb201, a cell string to mbv3).
 */
export function normalizeArch(space: TrainableSpace, arch: string): string {
  try {
    return space.normalize(arch);
  } catch (e) {
    for (const other of SPACE_NAMES) {
      if (other === space.id) continue;
      try {
        getTrainableSpace(other).normalize(arch);
      } catch {
        continue;
      }
      throw new ConfigError('space', `the architecture is of space ${other}, not ${space.id}`, `pass --space ${other}`);
    }
    throw e;
  }
}

/** Info fields a space adds: MBV3 keeps its OFA config as an object too. */
function spaceExtras(space: string, arch: string): Pick<TrainedNetworkInfo, 'ofaConfig'> {
  if (space !== 'mbv3') return {};
  // arch is the canonical compact JSON ({ks, e, d} and r when the config gave one).
  return { ofaConfig: JSON.parse(arch) as OfaConfig };
}

/**
 * The checks train-arch can make before reading any image: the space exists, the architecture is one
 * of it (else which --space it belongs to), the recipe (default: the space's) is for it, and the
 * overridden recipe is valid. Returns the canonical architecture and the recipe to train with.
 */
export function resolveTrainSetup(o: Pick<TrainArchOptions, 'space' | 'arch' | 'recipe' | 'overrides'>): { space: TrainableSpace; arch: string; recipe: TrainRecipe } {
  const space = getTrainableSpace(o.space);
  const arch = normalizeArch(space, o.arch);
  const base = o.recipe === undefined ? resolveRecipe(defaultRecipeFor(space.id)) : typeof o.recipe === 'string' ? resolveRecipe(o.recipe) : o.recipe;
  const recipe: TrainRecipe = { ...base, ...o.overrides, id: o.overrides && Object.keys(o.overrides).length ? `${base.id}+custom` : base.id };
  checkRecipeForSpace(space.id, recipe);
  validateRecipe(recipe);
  return { space, arch, recipe };
}

/**
 * Train an architecture of the search space from scratch on an image dataset: per class, a seeded
 * split into held-out test images (testFraction) and training images (capped by the recipe's
 * maxTrainPerClass), images resized to the recipe's input size and normalised with the training
 * images' channel statistics; the recipe's SGD schedule; top-1 on the held-out images.
 */
export async function trainArchOnDataset(o: TrainArchOptions): Promise<TrainArchResult> {
  const { space, arch, recipe } = resolveTrainSetup(o);
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
  // The same seeds as before MBV3 existed: NB201 results of a given seed are unchanged.
  const built = space.build(arch, recipe, classes.length, new Rng(`init:${seed}:${arch}`));
  let result: TrainResult;
  try {
    result = trainClassifier(built, sets.train, sets.test, recipe, { seed: hashString(`train:${seed}:${arch}`), onEpoch: o.onEpoch });
  } catch (e) {
    built.dispose();
    throw e;
  }
  const info: TrainedNetworkInfo = {
    format: TRAINED_FORMAT,
    space: space.id,
    arch,
    config: built.config,
    ...spaceExtras(space.id, arch),
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
  return { net: built.module, info, result };
}

/** Save a trained network as a folder: network.json (+ its blob, our checkpoint format) and info.json. */
export function saveTrainedNetwork(dir: string, net: TrainedModule, info: TrainedNetworkInfo): void {
  fs.mkdirSync(dir, { recursive: true });
  saveCheckpoint(path.join(dir, 'network.json'), net, { kind: 'trained-network', space: info.space, config: info.config, arch: info.arch });
  writeFileAtomic(path.join(dir, 'info.json'), `${JSON.stringify(info, null, 2)}\n`);
}

/**
 * Load a folder written by saveTrainedNetwork. Strict: the space must be a trainable one, the network
 * config is checked field by field, an MBV3 folder's ofaConfig must be a valid OFA config equal to its
 * arch, and every parameter must be present with its shape. Returns the network and its input size.
 */
export function loadTrainedNetwork(dir: string): { net: TrainedModule; info: TrainedNetworkInfo; inputSize: number } {
  const file = path.join(dir, 'info.json');
  if (!fs.existsSync(file)) throw new InputError({ file: dir }, 'not a trained network folder (no info.json)', "make one with 'metad2a train-arch --out <dir>'");
  let info: TrainedNetworkInfo;
  try {
    info = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainedNetworkInfo;
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
  if (info === null || typeof info !== 'object') throw new InputError({ file }, 'expected a JSON object');
  if (info.format !== TRAINED_FORMAT) throw new InputError({ file, field: 'format' }, `expected '${TRAINED_FORMAT}', got '${String(info.format)}'`);
  if (typeof info.space !== 'string' || !SPACE_NAMES.includes(info.space)) {
    throw new InputError({ file, field: 'space' }, `unsupported space '${String(info.space)}'`, `known: ${SPACE_NAMES.join(', ')}`);
  }
  if (typeof info.arch !== 'string') throw new InputError({ file, field: 'arch' }, 'missing');
  const space = getTrainableSpace(info.space);
  if (info.space === 'mbv3') {
    const cfg = validateOfaConfig(info.ofaConfig, { file, field: 'ofaConfig' });
    let fromArch: string;
    try {
      fromArch = space.normalize(info.arch);
    } catch (e) {
      throw new InputError({ file, field: 'arch' }, (e as Error).message);
    }
    if (formatOfaConfig(cfg) !== fromArch) throw new InputError({ file, field: 'ofaConfig' }, 'differs from arch', 'the folder was edited: restore info.json or train again');
  }
  let built: BuiltNetwork;
  try {
    built = space.rebuild(info.arch, info.config, { file, field: 'config' });
  } catch (e) {
    if (e instanceof MetaD2AError && !(e instanceof InputError)) throw new InputError({ file }, e.message);
    throw e;
  }
  const ckpt = path.join(dir, 'network.json');
  try {
    built.module.loadStateDict(loadCheckpoint(ckpt).state, { strict: true, source: ckpt });
  } catch (e) {
    built.dispose();
    throw e;
  }
  return { net: built.module, info, inputSize: built.inputSize };
}
