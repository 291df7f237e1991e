#!/usr/bin/env node
// Kernel census of the models' hot paths: how many tfjs kernels each runs and where their time
// goes (tf.profile; per-kernel times include profiling overhead, so use them for shares, not totals).
// Fused host ops show up as "unnamed scope" with their forward time only: their backward passes run
// inside the gradient computation, outside any kernel (compare the unprofiled cpu time).
//   node tools/bench/models-profile.mjs [--what gen|pred|rank|all] [--top 25] [--native]
// --native: instead of tf.profile, time every call into the OpenBLAS addon (by function, and for
// gemm/bmm by shape with its GFLOP/s) over a few steps, next to the step's total CPU time: what is
// left outside the addon is tfjs kernels, engine and JS.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@metad2a/core';
import { initBackend, importTorchStateDict, readF32Bundle, fusedOps } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { TorchAdam } from '@metad2a/meta-training';
import { nb201Space } from '@metad2a/search-space-201';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const WHAT = opt('what', 'all');
const TOP = Number(opt('top', 25));
const NATIVE = args.includes('--native');
process.env.METAD2A_BLAS_THREADS ??= '1';
await initBackend({ force: opt('backend', 'wasm'), quiet: true });

const fixture = readF32Bundle(path.join(root, '../shared/fixtures/metad2a-parity/manifest.json'));
const gen = new Generator(nb201Space);
gen.loadOriginal(importTorchStateDict(path.join(root, '../shared/data/metad2a-original/generator_ckpt_400.pt')));
const pred = new Predictor(nb201Space);
pred.loadOriginal(fixture.group('predictor_state'));
if (NATIVE) instrument();
const rng = new Rng(333);
const B = 32;
const X = tf.tensor3d(rng.normalArray(B * 400 * 512), [B, 400, 512]);
const dags = Array.from({ length: B }, () => nb201Space.toDag(nb201Space.sample(rng)));

// Wraps the addon's functions (the registered kernels and the fused ops call them through the same
// object) to time each call; shapes of gemm/bmm calls are kept with their flop counts.
const calls = new Map();
function instrument() {
  const addon = fusedOps();
  if (!addon) throw new Error('--native needs the OpenBLAS addon and METAD2A_FUSED not off');
  const flops = {
    gemm: (a) => [`gemm ${a[0] ? 'T' : 'N'}${a[1] ? 'T' : 'N'} ${a[2]}x${a[3]}x${a[4]}`, 2 * a[2] * a[3] * a[4]],
    bmm: (a) => [`bmm ${a[7] ? 'T' : 'N'}${a[8] ? 'T' : 'N'} ${a[3]}x[${a[4]}x${a[5]}x${a[6]}]`, 2 * a[3] * a[4] * a[5] * a[6]],
  };
  for (const name of Object.keys(addon)) {
    const f = addon[name];
    if (typeof f !== 'function' || ['setThreads', 'getThreads', 'config'].includes(name)) continue;
    addon[name] = (...a) => {
      const t0 = performance.now();
      const r = f(...a);
      const dt = performance.now() - t0;
      const [key, fl] = flops[name] ? flops[name](a) : [name, 0];
      const e = calls.get(key) ?? { n: 0, ms: 0, flops: 0 };
      e.n++;
      e.ms += dt;
      e.flops += fl;
      calls.set(key, e);
      return r;
    };
  }
}
async function nativeCensus(label, fn, steps = 5) {
  fn();
  calls.clear();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) fn();
  const wall = (performance.now() - t0) / steps;
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1000 / steps;
  let inAddon = 0;
  for (const e of calls.values()) inAddon += e.ms / steps;
  console.log(`\n== ${label}: per step wall ${wall.toFixed(1)} ms, cpu ${cpu.toFixed(1)} ms; in the addon ${inAddon.toFixed(1)} ms, outside ${(wall - inAddon).toFixed(1)} ms`);
  const rows = [...calls].sort((a, b) => b[1].ms - a[1].ms).slice(0, TOP);
  for (const [k, e] of rows) {
    const gf = e.flops ? `${(e.flops / (e.ms * 1e6)).toFixed(0).padStart(5)} GFLOP/s` : '';
    console.log(`  ${k.padEnd(34)} ${String(e.n / steps).padStart(6)} calls ${(e.ms / steps).toFixed(2).padStart(8)} ms ${gf}`);
  }
}

async function census(label, fn) {
  if (NATIVE) return nativeCensus(label, fn);
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

// A training step as meta-training takes it: variableGrads, then TorchAdam (one native call where
// the fused host ops run).
function stepper(model, lossFn) {
  const o = new TorchAdam(1e-4, 0.9, 0.999, 1e-8);
  const params = new Map(model.namedParameters().filter(([, v]) => v.trainable));
  const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
  return () => {
    const { value, grads } = tf.variableGrads(lossFn, [...params.values()]);
    o.step(params, new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v), g])));
    tf.dispose([value, ...Object.values(grads)]);
  };
}
if (WHAT === 'gen' || WHAT === 'all') {
  await census('generator training step', stepper(gen, () => gen.loss(X, dags, { beta: 0.005, train: true, rng }).loss));
}
if (WHAT === 'pred' || WHAT === 'all') {
  const y = Array.from({ length: B }, () => rng.normal(0, 0.01));
  await census('predictor training step', stepper(pred, () => pred.loss(X, dags, y)));
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
