import { ConfigError } from '@metad2a/core';

/**
 * A named, recorded way of training an architecture. Every database record stores the recipe id, so
 * accuracies from different recipes are never mixed silently.
 */
export interface TrainRecipe {
  id: string;
  /** Network width (channels of the first stage) and cells/blocks per stage. */
  width: number;
  depth: number;
  /** Square input size the images are resized to before training. */
  inputSize: number;
  epochs: number;
  batchSize: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  warmupEpochs: number;
  /** Random-crop padding in pixels (0 = no crop) and horizontal flips. */
  augmentPad: number;
  augmentFlip: boolean;
  /** Cap on training images per class (0 = all), so a recipe's cost is bounded on large datasets. */
  maxTrainPerClass: number;
}

/** NAS-Bench-201's own 200-epoch setting (C=16, N=5, 32x32), for reference and GPU machines. */
export const NB201_FULL: TrainRecipe = {
  id: 'nb201-full-200ep',
  width: 16,
  depth: 5,
  inputSize: 32,
  epochs: 200,
  batchSize: 256,
  lr: 0.1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  warmupEpochs: 0,
  augmentPad: 4,
  augmentFlip: true,
  maxTrainPerClass: 0,
};

export const RECIPES: Record<string, TrainRecipe> = { [NB201_FULL.id]: NB201_FULL };

export function registerRecipe(r: TrainRecipe): void {
  validateRecipe(r);
  RECIPES[r.id] = r;
}

export function getRecipe(id: string): TrainRecipe {
  const r = RECIPES[id];
  if (!r) throw new ConfigError('recipe', `unknown recipe '${id}'`, `known: ${Object.keys(RECIPES).join(', ')}`);
  return r;
}

export function validateRecipe(r: TrainRecipe): void {
  const positiveInts: Array<keyof TrainRecipe> = ['width', 'depth', 'inputSize', 'epochs', 'batchSize'];
  for (const k of positiveInts) {
    const v = r[k] as number;
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`recipe.${k}`, `must be a positive integer, got ${v}`);
  }
  if (!(r.lr > 0 && Number.isFinite(r.lr))) throw new ConfigError('recipe.lr', `must be a finite number > 0, got ${r.lr}`);
  if (!(r.momentum >= 0 && r.momentum < 1)) throw new ConfigError('recipe.momentum', `must be in [0, 1), got ${r.momentum}`);
  // torch.optim.SGD refuses this too: Nesterov needs a momentum
  if (r.nesterov && r.momentum === 0) throw new ConfigError('recipe.nesterov', 'Nesterov momentum needs momentum > 0');
  if (!(r.weightDecay >= 0)) throw new ConfigError('recipe.weightDecay', `must be >= 0, got ${r.weightDecay}`);
  if (!(r.warmupEpochs >= 0 && r.warmupEpochs < r.epochs)) throw new ConfigError('recipe.warmupEpochs', `must be in [0, epochs)`);
  if (!(r.augmentPad >= 0)) throw new ConfigError('recipe.augmentPad', `must be >= 0`);
  if (!(r.maxTrainPerClass >= 0)) throw new ConfigError('recipe.maxTrainPerClass', `must be >= 0`);
}
