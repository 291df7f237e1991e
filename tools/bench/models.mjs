#!/usr/bin/env node
// Speed of the three models (set encoder, D-VAE generator, predictor) against the original PyTorch
// code's single-core figures. Runs on the built dist of the packages:
//   (cd packages/set-encoder && npx tsup) && (cd packages/dag-vae && npx tsup) && (cd packages/predictor && npx tsup)
//   (cd packages/meta-training && npx tsup)   # the training steps use its TorchAdam
//   node tools/bench/models.mjs [--repeats 5] [--backend wasm] [--gen-batch 100] [--compare] [--only train]
//        [--optimizer torch|tfjs] [--adam-unfused]      METAD2A_BLAS_THREADS=2 for two BLAS threads (default 1)
// --compare also times every item with the fused host ops off (METAD2A_FUSED=off: the per-step tfjs
// compositions, and wasm's stock copying Identity) in the same process, item by item (a block of
// unfused runs right before the block of fused runs), so both see about the same machine load.
// Reports medians over repeated runs and the speed-up over the original's figures (one core):
// decode 100 graphs 0.08 s, set-encode 100 ten-class datasets 0.18 s, rank 500 candidates 0.38 s,
// one training step at batch 32: generator 0.29 s, predictor 0.37 s.
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@metad2a/core';
import { initBackend, importTorchStateDict, readF32Bundle } from '@metad2a/nn';
import { setIdentityAliasing } from '@metad2a/kernels-blas';
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
const REPEATS = Number(opt('repeats', 5));
const COMPARE = args.includes('--compare');
const GEN_BATCH = Number(opt('gen-batch', 300));
const OPTIMIZER = opt('optimizer', 'torch');
if (OPTIMIZER !== 'torch' && OPTIMIZER !== 'tfjs') throw new Error(`--optimizer: torch or tfjs, got ${OPTIMIZER}`);
const ADAM_UNFUSED = args.includes('--adam-unfused');
const ONLY = opt('only', 'all'); // all | train (only the two training steps)
// one BLAS thread unless asked otherwise: the figures compare with the original on one core
process.env.METAD2A_BLAS_THREADS ??= '1';
const backend = await initBackend({ force: opt('backend', 'wasm'), quiet: true });
const ORIGINAL = { decode100: 0.08, setEncode100: 0.18, rank500: 0.38, genStep: 0.29, predStep: 0.37 };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
// Wall time, and CPU time of this process: the machine is shared, and with one BLAS thread the
// process is single-threaded, so CPU time is what the run would take on an idle core.
const setMode = (fused) => {
  process.env.METAD2A_FUSED = fused ? 'on' : 'off';
  setIdentityAliasing(fused);
};
function time(fn, repeats = REPEATS, warmup = 1) {
  // --compare: a block of unfused runs, then a block of fused runs, each after its own warm-up.
  // (Alternating the modes run by run penalised the fused predictor step by ~50 %: each mode then
  // starts on the other's wasm heap and garbage; a training process stays in one mode.)
  const modes = COMPARE ? [false, true] : [true];
  const ts = { true: [], false: [] };
  const cs = { true: [], false: [] };
  let last;
  for (const m of modes) {
    setMode(m);
    for (let i = 0; i < warmup; i++) fn();
    for (let i = 0; i < repeats; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      last = fn();
      ts[m].push((performance.now() - t0) / 1000);
      const c = process.cpuUsage(c0);
      cs[m].push((c.user + c.system) / 1e6);
    }
  }
  setMode(true);
  const out = { median: median(ts.true), cpu: median(cs.true), last };
  if (COMPARE) out.stock = { s: median(ts.false), cpu: median(cs.false) };
  return out;
}

const fixture = readF32Bundle(path.join(root, '../shared/fixtures/metad2a-parity/manifest.json'));
const gen = new Generator(nb201Space);
gen.loadOriginal(importTorchStateDict(path.join(root, '../shared/data/metad2a-original/generator_ckpt_400.pt')));
const pred = new Predictor(nb201Space);
pred.loadOriginal(fixture.group('predictor_state'));

// A 10-class dataset: per class a pool of 60 feature vectors (the fixture's three 10-class inputs);
// every dataset sample draws 20 of them per class without replacement, as the original's loader.
const pool = fixture.get('generator_case/input_X').data; // [3, 200, 512], class-major
const F = 512;
const NS = 20;
const poolRow = (c, k) => {
  const task = Math.floor(k / NS);
  const s = k % NS;
  return pool.subarray(((task * 200) + c * NS + s) * F, ((task * 200) + c * NS + s + 1) * F);
};
function sampleDatasets(rng, count, C = 10) {
  const x = new Float32Array(count * C * NS * F);
  let o = 0;
  for (let b = 0; b < count; b++) {
    for (let c = 0; c < C; c++) {
      for (const k of rng.sampleWithoutReplacement(60, NS)) {
        x.set(poolRow(c, k), o);
        o += F;
      }
    }
  }
  return tf.tensor3d(x, [count, C * NS, F]);
}

const rng = new Rng(333);
const results = {};

// 1. set-encode 100 ten-class datasets, and decode 100 graphs (stochastic, as at meta-test)
if (ONLY === 'all') {
  const X = sampleDatasets(rng, 100);
  const enc = time(() => {
    const { mu, logvar } = gen.encodeDatasets(X);
    mu.dataSync();
    tf.dispose([mu, logvar]);
  });
  const { mu, logvar } = gen.encodeDatasets(X);
  const dec = time(() => gen.sample(mu, { mode: 'sample', rng }));
  results.setEncode100 = { s: enc.median, cpu: enc.cpu, stock: enc.stock };
  results.decode100 = { s: dec.median, cpu: dec.cpu, stock: dec.stock };
  tf.dispose([X, mu, logvar]);
}

// 2. generate 500 unique valid NB201 cells for one 10-class dataset (original protocol: every graph
//    gets a fresh dataset sample, z = mu, stochastic decoding, dedupe by string, stop at 500). The
//    pool path projects the dataset's feature store once (Generator.preparePool).
const poolFeatures = new Float32Array(600 * F);
for (let c = 0; c < 10; c++) for (let k = 0; k < 60; k++) poolFeatures.set(poolRow(c, k), (c * 60 + k) * F);
function generate500(seed, batch) {
  const r = new Rng(seed);
  const pool = gen.preparePool(tf.tensor2d(poolFeatures, [600, F]), new Array(10).fill(60));
  const seen = new Map();
  let batches = 0;
  let decoded = 0;
  while (seen.size < 500) {
    const dags = gen.generateFromPool(pool, batch, { mode: 'sample', rng: r });
    batches++;
    decoded += dags.length;
    for (const d of dags) {
      const arch = nb201Space.fromDag(d);
      if (!arch) continue;
      const s = nb201Space.format(arch);
      if (!seen.has(s) && seen.size < 500) seen.set(s, d);
    }
    if (batches > 2000) throw new Error('no 500 unique valid cells after 2000 batches');
  }
  pool.dispose();
  return { batches, decoded, cells: [...seen.keys()] };
}
if (ONLY === 'all') for (const batch of [100, GEN_BATCH]) {
  let seed = 1000;
  let info;
  const t = time(() => (info = generate500(seed++, batch)), REPEATS, 0);
  results[`generate500_b${batch}`] = { s: t.median, cpu: t.cpu, stock: t.stock, batches: info.batches, decoded: info.decoded };
  results.cells = info.cells;
}

// 3. rank 500 candidates: 10 fresh samples of the dataset, every candidate's canonical graph, mean score
if (ONLY === 'all') {
  const dags = results.cells.map((s) => nb201Space.toDag(nb201Space.parse(s)));
  const packed = pred.pack(dags);
  const X = sampleDatasets(rng, 10);
  const r = time(() => pred.scoreAll(X, packed));
  results.rank500 = { s: r.median, cpu: r.cpu, stock: r.stock };
  X.dispose();
}

// 4. training steps at batch 32: 20 classes x 20 samples x 512 features, lr 1e-4, as the
//    meta-training loop takes them (packages/meta-training train.ts): tf.variableGrads over the
//    trainable parameters, then TorchAdam (PyTorch's Adam keyed by name; fused into one native
//    call where the fused host ops run). --optimizer tfjs times tf.train.adam's minimize instead
//    (the figures before TorchAdam was fused); --adam-unfused runs TorchAdam's tfjs composition.
{
  const B = 32;
  const X = tf.tensor3d(rng.normalArray(B * 20 * NS * F), [B, 20 * NS, F]);
  const dags = Array.from({ length: B }, () => nb201Space.toDag(nb201Space.sample(rng)));
  const targets = Array.from({ length: B }, () => rng.normal(0, 0.01));
  const stepper = (model, lossFn) => {
    if (OPTIMIZER === 'tfjs') {
      const o = tf.train.adam(1e-4);
      const vars = model.trainableParameters();
      return () => {
        const c = o.minimize(lossFn, true, vars);
        const v = c.dataSync()[0];
        c.dispose();
        return v;
      };
    }
    const o = new TorchAdam(1e-4, 0.9, 0.999, 1e-8);
    const params = new Map(model.namedParameters().filter(([, v]) => v.trainable));
    const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
    return () => {
      const { value, grads } = tf.variableGrads(lossFn, [...params.values()]);
      const named = new Map(Object.entries(grads).map(([v, g]) => [nameOf.get(v), g]));
      if (ADAM_UNFUSED) {
        const was = process.env.METAD2A_FUSED;
        process.env.METAD2A_FUSED = 'off';
        o.step(params, named);
        process.env.METAD2A_FUSED = was;
      } else o.step(params, named);
      const v = value.dataSync()[0];
      tf.dispose([value, ...Object.values(grads)]);
      return v;
    };
  };
  const g = time(stepper(gen, () => gen.loss(X, dags, { beta: 0.005, train: true, rng }).loss));
  results.genStep = { s: g.median, cpu: g.cpu, stock: g.stock };
  const p = time(stepper(pred, () => pred.loss(X, dags, targets)));
  results.predStep = { s: p.median, cpu: p.cpu, stock: p.stock };
  X.dispose();
}

const row = (what, ours, orig) =>
  `${what.padEnd(52)} wall ${ours.s.toFixed(3).padStart(7)} s  cpu ${ours.cpu.toFixed(3).padStart(7)} s   original ${orig.toFixed(3)} s   x${(orig / ours.s).toFixed(1)} (cpu x${(orig / ours.cpu).toFixed(1)})` +
  (ours.stock ? `   | unfused cpu ${ours.stock.cpu.toFixed(3)} s (x${(orig / ours.stock.cpu).toFixed(1)}), fused/unfused ${(ours.cpu / ours.stock.cpu).toFixed(2)}` : '');
const blas = backend.blas ? (backend.blas.active ? `OpenBLAS on (${backend.blas.threads} threads)` : `OpenBLAS off: ${backend.blas.reason}`) : 'no BLAS';
console.log(`backend ${backend.name}, ${blas}; optimizer ${OPTIMIZER === 'tfjs' ? 'tf.train.adam' : ADAM_UNFUSED ? 'TorchAdam (tfjs composition)' : 'TorchAdam'}; medians of ${REPEATS} runs; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
if (ONLY === 'all') {
  console.log(row('set-encode 100 ten-class datasets', results.setEncode100, ORIGINAL.setEncode100));
  console.log(row('decode 100 graphs (stochastic)', results.decode100, ORIGINAL.decode100));
  for (const batch of [100, GEN_BATCH]) {
    const g = results[`generate500_b${batch}`];
    // the original needs the same number of sampled graphs, in batches of 100
    const orig = (g.decoded / 100) * (ORIGINAL.decode100 + ORIGINAL.setEncode100);
    console.log(row(`generate 500 unique valid (${g.decoded} graphs, batch ${batch})`, g, orig));
  }
  console.log(row('rank 500 candidates (10 dataset samples)', results.rank500, ORIGINAL.rank500));
}
console.log(row('generator training step, batch 32', results.genStep, ORIGINAL.genStep));
console.log(row('predictor training step, batch 32', results.predStep, ORIGINAL.predStep));
if (ONLY === 'all') {
  const best = results[`generate500_b${GEN_BATCH}`];
  console.log(`generation + ranking of 500: wall ${(best.s + results.rank500.s).toFixed(3)} s, cpu ${(best.cpu + results.rank500.cpu).toFixed(3)} s (target < 1 s)`);
}
console.log('targets (3x the original): rank 500 <= 0.127 s, generator step <= 0.097 s, predictor step <= 0.123 s; generate 500 >= x3 (1 thread: cpu time = one core; 2 threads: wall time, meaningful only on a quiet machine)');
const { cells, ...numbers } = results;
console.log(JSON.stringify({ backend: backend.name, optimizer: OPTIMIZER, adamUnfused: ADAM_UNFUSED, load: os.loadavg()[0], blas: backend.blas?.active ?? false, threads: backend.blas?.threads, repeats: REPEATS, ...numbers }));
