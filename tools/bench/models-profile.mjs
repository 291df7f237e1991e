#!/usr/bin/env node
// Kernel census of the models' hot paths: how many tfjs kernels each runs and where their time
// goes (tf.profile; per-kernel times include profiling overhead, so use them for shares, not totals).
// Fused host ops show up as "unnamed scope" with their forward time only: their backward passes run
// inside the gradient computation, outside any kernel (compare the unprofiled cpu time).
//   node tools/bench/models-profile.mjs [--what gen|pred|rank|all] [--top 25]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@metad2a/core';
import { initBackend, importTorchStateDict, readF32Bundle } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { nb201Space } from '@metad2a/search-space-201';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const WHAT = opt('what', 'all');
const TOP = Number(opt('top', 25));
process.env.METAD2A_BLAS_THREADS ??= '1';
await initBackend({ force: opt('backend', 'wasm'), quiet: true });

const fixture = readF32Bundle(path.join(root, '../shared/fixtures/metad2a-parity/manifest.json'));
const gen = new Generator(nb201Space);
gen.loadOriginal(importTorchStateDict(path.join(root, '../shared/data/metad2a-original/generator_ckpt_400.pt')));
const pred = new Predictor(nb201Space);
pred.loadOriginal(fixture.group('predictor_state'));
const rng = new Rng(333);
const B = 32;
const X = tf.tensor3d(rng.normalArray(B * 400 * 512), [B, 400, 512]);
const dags = Array.from({ length: B }, () => nb201Space.toDag(nb201Space.sample(rng)));

async function census(label, fn) {
  fn(); // warm-up
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const info = await tf.profile(fn);
  const by = new Map();
  let total = 0;
  for (const k of info.kernels) {
    const e = by.get(k.name) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += k.kernelTimeMs;
    total += k.kernelTimeMs;
    by.set(k.name, e);
  }
  console.log(`\n== ${label}: ${info.kernels.length} kernels, unprofiled wall ${wall.toFixed(0)} ms cpu ${((c.user + c.system) / 1000).toFixed(0)} ms; kernel time ${total.toFixed(0)} ms`);
  for (const [name, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, TOP)) {
    console.log(`  ${name.padEnd(28)} ${String(e.n).padStart(6)}  ${e.ms.toFixed(1).padStart(8)} ms  ${((100 * e.ms) / total).toFixed(1).padStart(5)} %`);
  }
}

if (WHAT === 'gen' || WHAT === 'all') {
  const o = tf.train.adam(1e-4);
  const vars = gen.trainableParameters();
  await census('generator training step', () => tf.dispose(o.minimize(() => gen.loss(X, dags, { train: true, rng }).loss, true, vars)));
}
if (WHAT === 'pred' || WHAT === 'all') {
  const o = tf.train.adam(1e-4);
  const vars = pred.trainableParameters();
  const y = Array.from({ length: B }, () => rng.normal(0, 0.01));
  await census('predictor training step', () => tf.dispose(o.minimize(() => pred.loss(X, dags, y), true, vars)));
}
if (WHAT === 'rank' || WHAT === 'all') {
  const cells = new Map();
  while (cells.size < 500) {
    const a = nb201Space.sample(rng);
    cells.set(nb201Space.format(a), nb201Space.toDag(a));
  }
  const packed = pred.pack([...cells.values()]);
  const X10 = tf.tensor3d(rng.normalArray(10 * 200 * 512), [10, 200, 512]);
  await census('rank 500', () => pred.scoreAll(X10, packed));
}
