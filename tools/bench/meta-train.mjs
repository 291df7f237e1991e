#!/usr/bin/env node
// Speed of the meta-training loop at the original's sizes (batch 32 tasks x 20 classes x 20 features of
// 512 dims; generator hs 56, predictor hs 512): seconds per training batch inside metaTrain (data
// assembly from the feature store + forward/backward + Adam), the share of batch assembly alone, and
// the projected time of the original's schedule (4,230 predictor records -> 133 batches, 400 epochs).
// Runs on built dist:
//   (cd packages/plots && npx tsup) && (cd packages/meta-training && npx tsup)
//   node tools/bench/meta-train.mjs [--batches 6] [--backend wasm] [--model generator|predictor|both]
// Data: 20 pseudo-classes (the CIFAR-10 subset's train and test halves of each class), each image's first
// 512 raw pixel values / 255 as its feature (real, deterministic; values do not change the speed), 64
// tasks of 20 classes x 4 NB201 cells with 12-epoch table accuracies.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { MetaDatabaseWriter, openCifarBinary, sampleTasks, writeFeatureStore } from '@metad2a/data-pipeline';
import { FeatureSampler, assembleBatch, buildConfig, loadMetaData, metaTrain } from '@metad2a/meta-training';
import { nb201Space } from '@metad2a/search-space-201';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const shared = path.resolve(root, '../shared/data');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const BATCHES = Number(opt('batches', 6));
const MODELS = opt('model', 'both') === 'both' ? ['generator', 'predictor'] : [opt('model')];
const backend = await initBackend({ force: opt('backend', 'wasm'), quiet: true });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-bench-mt-'));
try {
  const D = 512;
  const bins = ['train_100per_class.bin', 'test_100per_class.bin'].map((f) => path.join(shared, 'cifar10-subset', f));
  const rows = [];
  const counts = [];
  const indices = [];
  for (const [half, bin] of bins.entries()) {
    const ds = openCifarBinary([bin], { variant: 'cifar10' });
    for (let c = 0; c < 10; c++) {
      const idx = [];
      ds.labels.forEach((l, i) => l === c && idx.push(i));
      const out = new Float32Array(idx.length * D);
      (await ds.read(idx)).forEach((img, r) => {
        for (let k = 0; k < D; k++) out[r * D + k] = img.data[k] / 255;
      });
      rows[half * 10 + c] = new Uint8Array(out.buffer);
      counts[half * 10 + c] = idx.length;
      indices[half * 10 + c] = idx.map((i) => i + half * ds.size);
    }
    ds.close();
  }
  const store = path.join(dir, 'store.json');
  writeFeatureStore(store, { extractor: 'pixels-raw512', inputSize: 32, dims: D, classes: Array.from({ length: 20 }, (_, i) => `c${i}`), rows, counts, indices, source: { kind: 'cifar10', name: 'pseudo20', files: bins, records: 2000, selection: { perClass: null, seed: 0 } } });
  const table = fs.readFileSync(path.join(shared, 'nb201', 'nb201_12epoch_valid_test.csv'), 'utf8').split('\n');
  const cols = table[0].split(',');
  const cells = table.slice(1, 257).map((l) => l.split(','));
  const tasks = sampleTasks({ sources: [{ name: 'pseudo20', numClasses: 20 }], numTasks: 64, classesPerTask: 20, seed: 1 });
  const database = path.join(dir, 'db.csv');
  const w = await MetaDatabaseWriter.open(database);
  await w.append(
    tasks.flatMap((t, k) =>
      [0, 1, 2, 3].map((j) => {
        const f = cells[k * 4 + j];
        return { taskId: t.id, dataset: 'pseudo20', classes: t.classes, searchSpace: 'nb201', arch: f[cols.indexOf('cellstr')], accuracy: Number(f[cols.indexOf('cifar10-val')]), recipe: 'nb201-12ep-table', seed: null, time: '2026-11-29T00:00:00Z' };
      }),
    ),
  );
  w.close();

  console.log(`backend ${backend.name}${backend.blas ? ' + OpenBLAS' : ''}; batch 32 x 20 classes x 20 features x ${D} dims; ${BATCHES} timed batches per model (first batch is warm-up; 8 batches per epoch)`);
  for (const model of MODELS) {
    // 256 records (the generator takes all 4 cells per task here so that both have 8 batches); valid 8.
    const config = buildConfig({ overrides: { model, database, features: { pseudo20: store }, out: path.join(dir, `run-${model}`), epochs: 1, valid: 8, checkpointEvery: 1, selection: { rule: 'all' } } });
    const data = await loadMetaData(config, [nb201Space]);
    // Batch assembly from disk (no cache) and from the in-memory class cache (after a warm-up batch).
    const asmTime = (budget) => {
      const sampler = new FeatureSampler(data.stores, budget);
      const rng = new Rng(1);
      const ts = [];
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        const b = assembleBatch(data.train.slice(0, 32), sampler, rng, 20, D);
        ts.push((performance.now() - t0) / 1000);
        b.X.dispose();
      }
      return median(ts.slice(1));
    };
    const disk = asmTime(0);
    const a = asmTime(2 ** 30);
    // The feature draw alone (no tensor packing): one read call per row from disk vs copies from memory.
    const drawTime = (budget) => {
      const sampler = new FeatureSampler(data.stores, budget);
      const rng = new Rng(2);
      const ts = [];
      for (let i = 0; i < 8; i++) {
        const t0 = performance.now();
        for (const e of data.train.slice(0, 32)) sampler.sample(e.record.dataset, e.record.classes, rng, 20);
        ts.push((performance.now() - t0) / 1000);
      }
      return median(ts.slice(2));
    };
    const drawDisk = drawTime(0);
    const drawMem = drawTime(2 ** 30);
    for (const s of data.stores.values()) s.close();
    const stamps = [];
    const t0 = performance.now();
    await metaTrain(config, { hooks: { onBatch: () => stamps.push(performance.now()) } });
    // After the last batch: validation (8 records) and every checkpoint of the epoch (last, ckpt_1, best).
    const tail = (performance.now() - stamps[stamps.length - 1]) / 1000;
    // Intervals between batch ends, the first batch (warm-up) excluded.
    const per = stamps.slice(1).map((t, i) => (t - stamps[i]) / 1000).slice(0, BATCHES);
    const step = median(per);
    const full = 133; // original predictor train split: 4,230 records / 32
    console.log(
      `${model.padEnd(9)}  ${step.toFixed(3)} s/batch (median of ${per.length}; min ${Math.min(...per).toFixed(3)})  ` +
        `assembly ${a.toFixed(4)} s cached (${((a / step) * 100).toFixed(1)}%), ${disk.toFixed(4)} s from disk; draw alone ${drawMem.toFixed(4)} vs ${drawDisk.toFixed(4)} s  ` +
        `validation + checkpoints ${tail.toFixed(2)} s  ` +
        `-> ${((step * full) / 60).toFixed(1)} min/epoch of 133 batches, ${((step * full * 400) / 3600).toFixed(1)} h for 400 epochs ` +
        `(total ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
