import type { TrainRecipe } from '@metad2a/arch-training';

/**
 * A recipe that names the search space it trains. Recipes without `space` (all NB201 ones, and
 * arch-training's nb201-full-200ep) are NB201 recipes: their width/depth are the cell network's C and N.
 */
export type SpaceRecipe = TrainRecipe & { space?: string };

/**
 * What width and depth mean in an MBV3 recipe (TrainRecipe's fields are NB201-shaped):
 * - `width`: the OFA width multiplier in percent (100 = w1.0, MetaD2A's ofa_mbv3_d234_e346_k357_w1.0;
 *   50 = w0.5, a cheaper proxy with every layer's channels halved by make_divisible).
 * - `depth`: must be 1. A subnet's depth is part of the architecture (the config's d per stage), so a
 *   recipe cannot set it; 1 is the only accepted value so that an NB201-style depth fails loudly.
 */
export const MBV3_RECIPE_DEPTH = 1;

/**
 * MBV3 subnets trained from scratch on CPUs. The original fine-tunes from the OFA supernet at 224 px
 * for 150 epochs (spec §5.4); that needs the supernet weights and a GPU. These keep its optimiser family
 * (SGD, Nesterov momentum 0.9, cosine to 0, flips) at a from-scratch learning rate and MobileNet's small
 * weight decay, and shrink input size, epochs and images per class. Cost: see the README (measured
 * with tools/bench/db-build.mjs --space mbv3).
 */
const base = {
  space: 'mbv3',
  depth: MBV3_RECIPE_DEPTH,
  lr: 0.1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 4e-5,
  warmupEpochs: 0,
  augmentFlip: true,
  augmentPad: 0,
} as const;

export const MBV3_DB_RECIPES: readonly SpaceRecipe[] = [
  // The MBV3 default: w1.0 at 32 px (the net downsamples 32x, so the last stage sees 1x1), 5 epochs,
  // 200 images per class. Not calibrated against any reference ranking (none exists for MBV3 here).
  { ...base, id: 'mbv3-w100-32px-5ep-200pc', width: 100, inputSize: 32, epochs: 5, batchSize: 64, maxTrainPerClass: 200 },
  // Half width (the w0.5 supernet's channels): the cheaper proxy.
  { ...base, id: 'mbv3-w50-32px-5ep-200pc', width: 50, inputSize: 32, epochs: 5, batchSize: 64, maxTrainPerClass: 200 },
  // The tests' recipe: a real training of a full-width subnet in a few seconds.
  { ...base, id: 'tiny-mbv3-w100-32px-1ep', width: 100, inputSize: 32, epochs: 1, batchSize: 20, maxTrainPerClass: 20 },
];

export const DEFAULT_MBV3_RECIPE = MBV3_DB_RECIPES[0].id;
