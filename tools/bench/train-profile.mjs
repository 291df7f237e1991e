// Where the time of an architecture training goes: one epoch of a real training (random images of the
// recipe's size, so it needs no dataset) under tf.profile, kernels grouped by name. Host ops (fused
// BatchNorm, 3x3 box mean) show as "unnamed scope". Compare METAD2A_FUSED=off for the tfjs compositions.
//   npx nx run-many -t build && METAD2A_BLAS_THREADS=1 node tools/bench/train-profile.mjs [--space nb201|mbv3]
//       [--arch <cell or OFA config>] [--recipe <id>] [--images 1000] [--classes 5]
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import { Rng } from '@metad2a/core';
import { getTrainableSpace, resolveRecipe } from '@metad2a/db-build';
import { trainClassifier } from '@metad2a/arch-training';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
await initBackend({});
const spaceId = opt('space', 'nb201');
const space = getTrainableSpace(spaceId);
const recipe = { ...resolveRecipe(opt('recipe', spaceId === 'mbv3' ? 'mbv3-w100-32px-5ep-200pc' : 'nb201-c8n2-16px-5ep-200pc')), epochs: 1 };
const arch = opt('arch', spaceId === 'mbv3' ? space.sample(new Rng('profile')) : '|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|');
const [n, k, s] = [Number(opt('images', 1000)), Number(opt('classes', 5)), recipe.inputSize];
const rng = new Rng(1);
const images = (count) => ({
  n: count, height: s, width: s, channels: 3, numClasses: k,
  x: Float32Array.from({ length: count * s * s * 3 }, () => rng.next() - 0.5),
  labels: Int32Array.from({ length: count }, (_, i) => i % k),
});
const [train, test] = [images(n), images(Math.max(k, n >> 2))];
const net = space.build(arch, recipe, k, new Rng('init'));
trainClassifier(net, train, test, recipe); // warm-up: kernel compilation, scratch buffers
const t0 = performance.now();
trainClassifier(net, train, test, recipe);
const plain = performance.now() - t0;
const prof = await tf.profile(() => {
  trainClassifier(net, train, test, recipe);
});
const by = new Map();
for (const kn of prof.kernels) {
  const e = by.get(kn.name) ?? { ms: 0, calls: 0 };
  e.ms += kn.kernelTimeMs;
  e.calls++;
  by.set(kn.name, e);
}
const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
console.log(`${arch}, ${recipe.id}, 1 epoch of ${n} images: ${plain.toFixed(0)} ms; under the profiler ${total.toFixed(0)} ms in ${prof.kernels.length} kernels`);
for (const [name, e] of [...by.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 20)) {
  console.log(`${name.padEnd(26)} ${e.ms.toFixed(0).padStart(6)} ms ${String(e.calls).padStart(7)} calls`);
}
net.dispose();
