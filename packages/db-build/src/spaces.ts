import { ConfigError, Rng } from '@metad2a/core';
import type { TrainableNetwork, TrainRecipe } from '@metad2a/arch-training';
import { formatNb201, Nb201Network, nb201Space, parseNb201 } from '@metad2a/search-space-201';

/** A network the job can train and then free. */
export type DisposableNetwork = TrainableNetwork & { dispose(): void };

/** What building the database needs of a search space. Architectures travel as strings. */
export interface TrainableSpace {
  id: string;
  /** A random architecture, as its string. */
  sample(rng: Rng): string;
  /** Canonical string of an architecture (parse errors name the string). */
  normalize(arch: string): string;
  /** Key equal for functionally identical architectures (drawing K distinct ones per task). */
  functionalKey(arch: string): string;
  /** The trainable network for a recipe's width/depth/input size. */
  build(arch: string, recipe: TrainRecipe, numClasses: number, rng: Rng): DisposableNetwork;
}

export const nb201Trainable: TrainableSpace = {
  id: 'nb201',
  sample: (rng) => formatNb201(nb201Space.sample(rng)),
  normalize: (arch) => formatNb201(parseNb201(arch)),
  functionalKey: (arch) => nb201Space.canonicalKey(parseNb201(arch)),
  build(arch, recipe, numClasses, rng) {
    return new Nb201Network(parseNb201(arch), { C: recipe.width, N: recipe.depth, inputSize: recipe.inputSize, numClasses, inChannels: 3, rng });
  },
};

const SPACES: Record<string, TrainableSpace | string> = {
  nb201: nb201Trainable,
  // search-space-mbv3 has no trainable subnet yet; the name is known so the message says why.
  mbv3: 'the trainable MobileNetV3 subnet (packages/search-space-mbv3) is not available in this build yet',
};

export const SPACE_NAMES = Object.keys(SPACES);

/** Register another space (e.g. mbv3 once its trainable subnet exists). */
export function registerTrainableSpace(space: TrainableSpace): void {
  SPACES[space.id] = space;
}

export function getTrainableSpace(name: string): TrainableSpace {
  const s = SPACES[name];
  if (s === undefined) throw new ConfigError('space', `unknown search space '${name}'`, `known: ${Object.keys(SPACES).join(', ')}`);
  if (typeof s === 'string') throw new ConfigError('space', `'${name}': ${s}`);
  return s;
}
