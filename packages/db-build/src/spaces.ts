import * as tf from '@tensorflow/tfjs';
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
    const net = new Nb201Network(parseNb201(arch), { C: recipe.width, N: recipe.depth, inputSize: recipe.inputSize, numClasses, inChannels: 3, rng });
    return onlyUsedParameters(net, recipe.inputSize);
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
