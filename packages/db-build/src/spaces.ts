import * as tf from '@tensorflow/tfjs';
import { ConfigError, InputError, Rng, type InputLocation } from '@metad2a/core';
import type { Module } from '@metad2a/nn';
import { RECIPES, type TrainableNetwork, type TrainRecipe } from '@metad2a/arch-training';
import { formatNb201, Nb201Network, nb201Space, parseNb201, type Nb201NetConfig } from '@metad2a/search-space-201';
import { canonicalOfaKey, formatOfaConfig, OfaSubnet, parseOfaConfig, sampleOfaConfig } from '@metad2a/search-space-mbv3';
import { DEFAULT_DB_RECIPE, registerDbRecipes } from './recipes.js';
import { DEFAULT_MBV3_RECIPE, MBV3_RECIPE_DEPTH, type SpaceRecipe } from './recipes-mbv3.js';

/** A network the job can train and then free. */
export type DisposableNetwork = TrainableNetwork & { dispose(): void };

/** A built network with what saving and exporting it need. */
export interface BuiltNetwork extends DisposableNetwork {
  /** The network itself: named parameters for checkpoints, the full forward, its parameter count. */
  module: Module & { forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D; numTrainableParameters(): number };
  /** JSON that, with the architecture, rebuilds the same network shape (`rebuild`). */
  config: Record<string, unknown>;
  /** Square input size the network takes (NHWC, 3 channels). */
  inputSize: number;
}

/** What building the database needs of a search space. Architectures travel as strings. */
export interface TrainableSpace {
  id: string;
  /** A random architecture, as its string. */
  sample(rng: Rng): string;
  /** Canonical string of an architecture (parse errors name the string). */
  normalize(arch: string): string;
  /** Key equal for functionally identical architectures (drawing K distinct ones per task). */
  functionalKey(arch: string): string;
  /** The trainable network for a recipe of this space (checkRecipeForSpace), its input size and classes. */
  build(arch: string, recipe: TrainRecipe, numClasses: number, rng: Rng): BuiltNetwork;
  /** The same network shape again from `build`'s config (untrained weights), checked field by field. */
  rebuild(arch: string, config: unknown, loc?: InputLocation): BuiltNetwork;
}

/** The space a recipe trains: its `space` field; recipes without one are NB201's. */
export function recipeSpaceOf(recipe: TrainRecipe): string {
  return (recipe as SpaceRecipe).space ?? 'nb201';
}

/** Registered recipe ids for a space (db-build's own included). */
export function recipesForSpace(space: string): string[] {
  registerDbRecipes();
  return Object.values(RECIPES).filter((r) => recipeSpaceOf(r) === space).map((r) => r.id);
}

/** The default cheap recipe of a space (what train-arch and build-database use when none is named). */
export function defaultRecipeFor(space: string): string {
  if (space === 'mbv3') return DEFAULT_MBV3_RECIPE;
  if (space === 'nb201') return DEFAULT_DB_RECIPE;
  const own = recipesForSpace(space);
  if (own.length === 0) throw new ConfigError('recipe', `no recipe is registered for space '${space}'`);
  return own[0];
}

/** A recipe's width/depth mean different things per space, so a recipe is only used with its own space. */
export function checkRecipeForSpace(space: string, recipe: TrainRecipe): void {
  const own = recipeSpaceOf(recipe);
  if (own !== space) {
    throw new ConfigError('recipe', `'${recipe.id}' is a recipe for ${own} networks, not ${space}`, `${space} recipes: ${recipesForSpace(space).join(', ') || '(none registered)'}`);
  }
  if (space === 'mbv3' && recipe.depth !== MBV3_RECIPE_DEPTH) {
    throw new ConfigError('recipe.depth', `an MBV3 recipe's depth must be ${MBV3_RECIPE_DEPTH}, got ${recipe.depth}`, "a subnet's depth is its config's d; do not override --depth for mbv3");
  }
}

function positiveInts(o: Record<string, unknown>, fields: readonly string[], loc: InputLocation): void {
  for (const f of fields) {
    const v = o[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InputError({ ...loc, field: `${loc.field ? `${loc.field}.` : ''}${f}` }, `expected a positive integer, got ${JSON.stringify(v)}`);
  }
}

function configObject(config: unknown, fields: readonly string[], loc: InputLocation): Record<string, unknown> {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new InputError(loc, `expected a network config object, got ${JSON.stringify(config)}`);
  const o = config as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!fields.includes(k)) throw new InputError({ ...loc, field: `${loc.field ? `${loc.field}.` : ''}${k}` }, 'unknown field', `a network config has ${fields.join(', ')}`);
  }
  return o;
}

export const nb201Trainable: TrainableSpace = {
  id: 'nb201',
  sample: (rng) => formatNb201(nb201Space.sample(rng)),
  normalize: (arch) => formatNb201(parseNb201(arch)),
  functionalKey: (arch) => nb201Space.canonicalKey(parseNb201(arch)),
  build(arch, recipe, numClasses, rng) {
    checkRecipeForSpace('nb201', recipe);
    const net = new Nb201Network(parseNb201(arch), { C: recipe.width, N: recipe.depth, inputSize: recipe.inputSize, numClasses, inChannels: 3, rng });
    return { ...onlyUsedParameters(net, recipe.inputSize), module: net, config: { ...net.config }, inputSize: net.config.inputSize };
  },
  rebuild(arch, config, loc = {}) {
    const o = configObject(config, NB201_CONFIG_FIELDS, loc);
    positiveInts(o, NB201_CONFIG_FIELDS, loc);
    const net = new Nb201Network(parseNb201(arch, { ...loc, field: 'arch' }), o as unknown as Nb201NetConfig);
    // For loading and inference: no gradient probe (onlyUsedParameters) needed.
    return {
      forward: (x, training) => net.forward(x, training),
      trainableParameters: () => net.trainableParameters(),
      dispose: () => net.dispose(),
      module: net,
      config: { ...net.config },
      inputSize: net.config.inputSize,
    };
  },
};

const NB201_CONFIG_FIELDS = ['C', 'N', 'inputSize', 'numClasses', 'inChannels'] as const;
const MBV3_CONFIG_FIELDS = ['resolution', 'numClasses', 'widthMult', 'dropout'] as const;

/** The network config an MBV3 build saves: OfaSubnet's options. */
export interface Mbv3NetConfig {
  resolution: number;
  numClasses: number;
  widthMult: number;
  dropout: number;
}

function mbv3Built(arch: string, cfg: Mbv3NetConfig, rng: Rng, loc: InputLocation = {}): BuiltNetwork {
  const ofa = parseOfaConfig(arch, { ...loc, field: loc.field ?? 'arch' });
  if (ofa.r !== undefined && ofa.r !== cfg.resolution) {
    throw new ConfigError('arch', `the OFA config says r=${ofa.r} but the network is built for ${cfg.resolution} px`, `drop "r" from the config, or train at ${ofa.r} px (--input-size ${ofa.r})`);
  }
  const net = new OfaSubnet(ofa, { resolution: cfg.resolution, numClasses: cfg.numClasses, widthMult: cfg.widthMult, dropout: cfg.dropout, rng });
  // Every parameter of a subnet reaches the logits (no dead paths as in NB201 cells).
  return {
    forward: (x, training) => net.forward(x, training),
    trainableParameters: () => net.trainableParameters(),
    dispose: () => net.dispose(),
    module: net,
    config: { ...cfg },
    inputSize: cfg.resolution,
  };
}

/**
 * OFA MobileNetV3 subnets (search-space-mbv3's OfaSubnet). Architectures are OFA configs as compact
 * JSON ({"ks":[20],"e":[20],"d":[5]}); the input size is the recipe's (a config's r, if given, must
 * equal it). Recipe width = width multiplier in percent, depth must be 1 (see recipes-mbv3.ts).
 */
export const mbv3Trainable: TrainableSpace = {
  id: 'mbv3',
  sample: (rng) => formatOfaConfig(sampleOfaConfig(rng)),
  normalize: (arch) => formatOfaConfig(parseOfaConfig(arch, { field: 'arch' })),
  functionalKey: (arch) => canonicalOfaKey(parseOfaConfig(arch, { field: 'arch' })),
  build(arch, recipe, numClasses, rng) {
    checkRecipeForSpace('mbv3', recipe);
    return mbv3Built(arch, { resolution: recipe.inputSize, numClasses, widthMult: recipe.width / 100, dropout: 0.2 }, rng);
  },
  rebuild(arch, config, loc = {}) {
    const o = configObject(config, MBV3_CONFIG_FIELDS, loc);
    positiveInts(o, ['resolution', 'numClasses'], loc);
    const sub = (f: string) => ({ ...loc, field: `${loc.field ? `${loc.field}.` : ''}${f}` });
    if (typeof o.widthMult !== 'number' || !(o.widthMult > 0)) throw new InputError(sub('widthMult'), `expected a positive number, got ${JSON.stringify(o.widthMult)}`);
    if (typeof o.dropout !== 'number' || !(o.dropout >= 0 && o.dropout < 1)) throw new InputError(sub('dropout'), `expected a number in [0, 1), got ${JSON.stringify(o.dropout)}`);
    return mbv3Built(arch, o as unknown as Mbv3NetConfig, new Rng(0), { ...loc, field: 'arch' });
  },
};

/**
 * The same network, training only the parameters the logits depend on. A cell whose output cannot
 * be reached from its input (all paths cut by 'none') outputs zeros, so nothing before it, nor a
 * conv on an edge that leads nowhere, gets a gradient; trainClassifier expects a gradient for every
 * variable it is given. Found by one backward pass on one blank image in inference mode (so BN
 * running statistics stay untouched): the tape knows which variables the output depends on.
 */
export function onlyUsedParameters(net: TrainableNetwork & { dispose(): void }, inputSize: number, channels = 3): DisposableNetwork {
  const all = net.trainableParameters();
  const x = tf.zeros([1, inputSize, inputSize, channels]) as tf.Tensor4D;
  const { value, grads } = tf.variableGrads(() => net.forward(x, false).sum() as tf.Scalar, all);
  const used = new Set(Object.keys(grads));
  tf.dispose([x, value, ...Object.values(grads)]);
  const params = all.filter((v) => used.has(v.name));
  return {
    forward: (x, training) => net.forward(x, training),
    trainableParameters: () => params,
    dispose: () => net.dispose(),
  };
}

const SPACES: Record<string, TrainableSpace | string> = {
  nb201: nb201Trainable,
  mbv3: mbv3Trainable,
};

export const SPACE_NAMES = Object.keys(SPACES);

/** Register another space (a third search space package). */
export function registerTrainableSpace(space: TrainableSpace): void {
  SPACES[space.id] = space;
}

export function getTrainableSpace(name: string): TrainableSpace {
  const s = SPACES[name];
  if (s === undefined) throw new ConfigError('space', `unknown search space '${name}'`, `known: ${Object.keys(SPACES).join(', ')}`);
  if (typeof s === 'string') throw new ConfigError('space', `'${name}': ${s}`);
  return s;
}
