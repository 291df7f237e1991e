// NB201 search-space benchmark: table loading, look-ups, encodings over all 15,625 cells, and the
// cell network's forward / training step on the active tfjs backend. Runs against built dist:
//   (cd packages/nn && npx tsup) && (cd packages/search-space-201 && npx tsup) && node tools/bench/nb201.mjs [--backend wasm|cpu] [--reps 5]
// Reports medians over --reps runs.
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@metad2a/nn';
import { Rng } from '@metad2a/core';
import {
  loadNb201Table, nb201Space, nb201Cost, nb201UniqueString, Nb201Network, parseNb201, formatNb201,
} from '@metad2a/search-space-201';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const reps = Number(opt('reps', 5));
const backend = opt('backend', 'auto');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
async function time(label, fn, n = reps, unit = 'ms') {
  const ts = [];
  let out;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    out = await fn();
    ts.push(performance.now() - t0);
  }
  const m = median(ts);
  console.log(`${label.padEnd(58)} median ${m.toFixed(2)} ${unit}  (n=${n}, min ${Math.min(...ts).toFixed(2)})`);
  return { median: m, out };
}

const load = await time('loadNb201Table (200-epoch + 12-epoch files)', () => loadNb201Table());
const table = load.out;
const strings = table.strings;

const q = { dataset: 'cifar10', split: 'test', epochs: 200 };
const lk = await time('accuracy() by string, all 15,625 cells', () => {
  let s = 0;
  for (const str of strings) s += table.accuracy(str, q);
  return s;
});
console.log(`  -> ${(15625 / (lk.median / 1000) / 1e6).toFixed(2)} M look-ups/s`);
const archs = strings.map((s) => parseNb201(s));
await time('parse + format, all cells', () => strings.forEach((s) => formatNb201(parseNb201(s))));
await time('canonicalKey (NATS unique string), all cells', () => archs.forEach((a) => nb201UniqueString(a)));
await time('toDag + fromDag (with validity check), all cells', () => archs.forEach((a) => nb201Space.fromDag(nb201Space.toDag(a))));
await time('nb201Cost, all cells', () => archs.forEach((a) => nb201Cost(a)));

const info = await initBackend({ force: backend, quiet: true });
console.log(`tfjs backend: ${info.name}${info.blas ? (info.blas.active ? ' + OpenBLAS kernels' : ` (OpenBLAS off: ${info.blas.reason})`) : ''}`);
const best = parseNb201('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|');
const net = new Nb201Network(best, { rng: new Rng(1) });
const rng = new Rng(2);
const B = Number(opt('batch', 16));
const x = tf.tensor4d(Float32Array.from({ length: B * 32 * 32 * 3 }, () => rng.normal()), [B, 32, 32, 3]);
const y = tf.oneHot(tf.tensor1d(Array.from({ length: B }, (_, i) => i % 10), 'int32'), 10);
tf.tidy(() => net.forward(x, false).dataSync()); // warm-up
const fwd = await time(`forward eval, C=16 N=5 32x32, batch ${B} (best CIFAR-100 cell)`, () => tf.tidy(() => net.forward(x, false).dataSync()), Math.max(3, reps));
const flops = nb201Cost(best).flopsCount;
console.log(`  -> ${(fwd.median / B).toFixed(1)} ms/image, ${((flops * 2 * B) / (fwd.median / 1000) / 1e9).toFixed(2)} GFLOP/s (2 FLOPs per multiply-add)`);
const opt2 = tf.train.momentum(0.1, 0.9, true);
const step = () => opt2.minimize(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, true)), false, net.trainableParameters());
step();
await time(`training step (fwd+bwd+SGD), batch ${B}`, () => step(), Math.max(3, reps));
