import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@metad2a/core';
import { initBackend, loadCheckpoint, type StateDict } from '@metad2a/nn';
import { splitRecords } from '@metad2a/data-pipeline';
import { nb201Space } from '@metad2a/search-space-201';
import { Rng } from '@metad2a/core';
import { FeatureStore, MetaDatabaseWriter, sampleTasks } from '@metad2a/data-pipeline';
import { loadHelpOfaArchs, mbv3Space } from '@metad2a/search-space-mbv3';
import { BEST_CHECKPOINT, FeatureSampler, LAST_CHECKPOINT, buildConfig, loadMetaData, metaTrain, type MetaTrainConfig } from '../src/index.js';
import { buildFixture, smallConfig, type Fixture } from './fixture.js';

let fx: Fixture;
beforeAll(async () => {
  await initBackend({ quiet: true });
  fx = await buildFixture();
});
afterAll(() => fs.rmSync(fx.dir, { recursive: true, force: true }));

const cfg = (model: 'generator' | 'predictor', name: string, extra: Record<string, unknown> = {}): MetaTrainConfig =>
  buildConfig({ overrides: smallConfig(model, fx, path.join(fx.dir, name), extra) });

function logLines(file: string): Array<Record<string, unknown>> {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

function maxDiff(a: StateDict, b: StateDict): number {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  let m = 0;
  for (const [k, v] of a) {
    const w = b.get(k)!.data;
    for (let i = 0; i < v.data.length; i++) m = Math.max(m, Math.abs(v.data[i] - w[i]));
  }
  return m;
}

describe('generator meta-training', () => {
  it('lowers the loss, validates every epoch, logs JSONL and writes checkpoints', async () => {
    const config = cfg('generator', 'gen');
    const batches: number[] = [];
    const saved: string[] = [];
    const tensors: number[] = [];
    const before = tf.memory().numTensors;
    const res = await metaTrain(config, {
      hooks: { onBatch: (p) => batches.push(p.batch), onCheckpoint: (c) => saved.push(`${c.kind}@${c.epoch}`), onEpoch: () => tensors.push(tf.memory().numTensors) },
    });
    // no tensor leaks: the count is flat across epochs and back to the start once the model is disposed
    expect(new Set(tensors).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    const h = res.history;
    expect(h.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    // 16 tasks, best cell each -> 16 pairs; 4 validation, 12 training = 2 batches of 8 and 4
    expect(batches).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    expect(h[3].trainLoss).toBeLessThan(h[0].trainLoss);
    expect(h[3].validLoss).toBeLessThan(h[0].validLoss);
    for (const e of h) {
      expect(Number.isFinite(e.validLoss) && Number.isFinite(e.validRecon!) && Number.isFinite(e.validKld!)).toBe(true);
      // loss = recon + beta * KL, per task
      expect(e.trainLoss).toBeCloseTo(e.trainRecon! + 0.005 * e.trainKld!, 3);
      expect(e.validLoss).toBeCloseTo(e.validRecon! + 0.005 * e.validKld!, 3);
    }
    expect(saved).toEqual(['last@1', 'periodic@2', 'last@2', 'last@3', 'periodic@4', 'last@4']);
    const lines = logLines(res.logFile);
    expect(lines.map((l) => l.type)).toEqual(['start', 'epoch', 'epoch', 'epoch', 'epoch', 'end']);
    expect(lines[1]).toMatchObject({ epoch: 1, lr: 3e-3 });
    for (const f of ['config.json', 'ckpt_2.json', 'ckpt_4.json', LAST_CHECKPOINT]) expect(fs.existsSync(path.join(res.runDir, f)), f).toBe(true);
    // Modules the original defines but never calls get no gradient and stay as initialised; used ones move.
    const c2 = loadCheckpoint(path.join(res.runDir, 'ckpt_2.json'));
    const c4 = loadCheckpoint(path.join(res.runDir, 'ckpt_4.json'));
    expect(c4.meta).toMatchObject({ kind: 'metad2a-meta-train', model: 'generator', epoch: 4, config: { searchSpace: 'nb201', hs: 16, nz: 16, numSample: 5, featureDim: 48, extractor: 'pixels-4x4' } });
    const same = (n: string) => c2.state.get(n)!.data.every((v, i) => v === c4.state.get(n)!.data[i]);
    expect(same('grue_forward.weight_ih')).toBe(true);
    expect(same('enc_g_mu.weight')).toBe(true);
    expect(same('fc1.weight')).toBe(false);
    expect(same('add_edge.0.weight')).toBe(false);
    // The resume checkpoint carries Adam's moments for exactly the trained parameters.
    const last = loadCheckpoint(path.join(res.runDir, LAST_CHECKPOINT));
    expect(last.state.has('optimizer.m.fc1.weight') && last.state.has('optimizer.v.add_edge.0.weight')).toBe(true);
    expect(last.state.has('optimizer.m.grue_forward.weight_ih')).toBe(false);
    expect(last.state.get('optimizer.iterations')!.data[0]).toBe(8);
  });
});

describe('optimiser', () => {
  it("takes Adam's first step: each trained weight moves by lr * |g| / (|g| + 1e-8) <= lr, untrained ones stay", async () => {
    // One batch per epoch (12 training pairs, batch 16). Same seed, so both runs start from the same weights with
    // the same gradient g: w1 = w0 - lr * s and w2 = w0 - 2 lr * s with |s| = |g| / (|g| + eps) <= 1, so
    // |w1 - w2| / lr = |s|: at most 1, and ~1 wherever |g| >> 1e-8.
    const lr = 1e-3;
    const a = await metaTrain(cfg('generator', 'adam1', { batchSize: 16, epochs: 1, lr }));
    const b = await metaTrain(cfg('generator', 'adam2', { batchSize: 16, epochs: 1, lr: 2 * lr }));
    const wa = loadCheckpoint(a.lastCheckpoint!).state;
    const wb = loadCheckpoint(b.lastCheckpoint!).state;
    const steps: number[] = [];
    const keyBias: number[] = [];
    for (const [name, v] of wa) {
      if (name.startsWith('optimizer.')) continue;
      const trained = wa.has(`optimizer.m.${name}`);
      v.data.forEach((x, i) => {
        const d = Math.abs(x - wb.get(name)!.data[i]) / lr;
        if (!trained) expect(d, name).toBe(0);
        else if (name.endsWith('fc_k.bias')) keyBias.push(d);
        else steps.push(d);
      });
    }
    expect(Math.max(...steps)).toBeLessThan(1 + 1e-3);
    // Most weights take the full step; the rest sit behind dead ReLUs (g = 0 exactly) or have |g| ~ 1e-8.
    expect(steps.filter((d) => d > 0.99).length / steps.length).toBeGreaterThan(0.7);
    // A bias on the attention keys shifts every logit of a softmax row equally: its gradient is 0 up to
    // rounding, so it barely moves.
    expect(keyBias.length).toBeGreaterThan(0);
    expect(Math.max(...keyBias)).toBeLessThan(0.05);
    expect(loadCheckpoint(a.lastCheckpoint!).state.get('optimizer.iterations')!.data[0]).toBe(1);
  });
});

describe('predictor meta-training', () => {
  it('lowers the loss, reports Pearson/Spearman/Kendall and keeps the best-correlation checkpoint', async () => {
    const config = cfg('predictor', 'pred', { epochs: 5, checkpointEvery: 5 });
    const res = await metaTrain(config);
    const h = res.history;
    expect(h).toHaveLength(5);
    expect(h[4].trainLoss).toBeLessThan(h[0].trainLoss);
    for (const e of h) {
      for (const k of ['pearson', 'spearman', 'kendall'] as const) {
        expect(Number.isFinite(e[k]), `${k} at epoch ${e.epoch}`).toBe(true);
        expect(Math.abs(e[k]!)).toBeLessThanOrEqual(1);
      }
    }
    // best = first epoch with the highest validation Pearson r (ties keep the earlier one)
    let bestEpoch = 0;
    let bestR = -Infinity;
    for (const e of h) if (e.pearson! > bestR) [bestR, bestEpoch] = [e.pearson!, e.epoch];
    expect(h.filter((e) => e.best).map((e) => e.epoch)).toContain(bestEpoch);
    const best = loadCheckpoint(path.join(res.runDir, BEST_CHECKPOINT));
    expect(best.meta).toMatchObject({ model: 'predictor', epoch: bestEpoch, selectBy: 'pearson', pearson: bestR });
    // targets use train-split statistics only: every record, the original's split (seeded permutation, first 25% held out)
    const { train } = splitRecords(fx.records, { valid: 0.25, seed: 333 });
    const acc = train.map((r) => r.accuracy);
    const mean = acc.reduce((a, b) => a + b, 0) / acc.length;
    const std = Math.sqrt(acc.reduce((a, b) => a + (b - mean) ** 2, 0) / (acc.length - 1));
    expect(acc.length).toBe(48);
    expect((best.meta as { targetStats: { mean: number; std: number } }).targetStats.mean).toBeCloseTo(mean, 10);
    expect((best.meta as { targetStats: { mean: number; std: number } }).targetStats.std).toBeCloseTo(std, 10);
  });
});

describe('task-relative predictor targets (targetNorm: task)', () => {
  it('centres each task on its training records and scales by the pooled within-task std', async () => {
    const data = await loadMetaData(cfg('predictor', 'tasknorm', { targetNorm: 'task' }), [nb201Space]);
    try {
      // independent recomputation from the fixture records and the original's split
      const { train, valid } = splitRecords(fx.records, { valid: 0.25, seed: 333 });
      const byTask = new Map<string, number[]>();
      for (const r of train) byTask.set(r.taskId, [...(byTask.get(r.taskId) ?? []), r.accuracy]);
      const means = new Map([...byTask].map(([t, a]) => [t, a.reduce((x, y) => x + y, 0) / a.length]));
      let ss = 0;
      for (const [t, a] of byTask) for (const x of a) ss += (x - means.get(t)!) ** 2;
      const pooled = Math.sqrt(ss / (train.length - byTask.size));
      expect(data.stats!.std).toBeCloseTo(pooled, 10);
      expect(data.stats!.mean).toBeCloseTo(train.reduce((a, r) => a + r.accuracy, 0) / train.length, 10);
      expect(data.train).toHaveLength(train.length);
      expect(data.valid).toHaveLength(valid.length);
      for (const e of [...data.train, ...data.valid]) {
        const m = means.get(e.record.taskId);
        if (m === undefined) continue; // a validation-only task: centred on its own records
        expect(e.target).toBeCloseTo((e.record.accuracy - m) / pooled / 100, 12);
      }
      // the task difficulty is gone: every task's training targets sum to zero
      const sums = new Map<string, number>();
      for (const e of data.train) sums.set(e.record.taskId, (sums.get(e.record.taskId) ?? 0) + e.target);
      expect(sums.size).toBeGreaterThan(1);
      for (const v of sums.values()) expect(Math.abs(v)).toBeLessThan(1e-12);
    } finally {
      for (const s of data.stores.values()) s.close();
    }
  });

  it('rejects an unknown normalisation by name', () => {
    expect(() => cfg('predictor', 'bad', { targetNorm: 'per-dataset' })).toThrow(/targetNorm.*'global', 'task'/);
  });
});

describe('resume', () => {
  it('4 epochs straight equal 2 epochs, a kill, and 2 resumed epochs (weights, Adam, scheduler, RNG)', async () => {
    // threshold 0.5 makes every epoch after the first "bad": with patience 1 the LR drops after epoch 3,
    // so the resumed run must have restored the scheduler's counters.
    const extra = { scheduler: { threshold: 0.5, patience: 1 } };
    const straight = await metaTrain(cfg('generator', 'straight', extra));
    expect(straight.history.map((e) => e.lr)).toEqual([3e-3, 3e-3, 3e-3, 3e-3 * 0.1]);

    const ac = new AbortController();
    const first = await metaTrain(cfg('generator', 'resumed', extra), { signal: ac.signal, hooks: { onEpoch: (e) => e.epoch === 2 && ac.abort() } });
    expect(first.stopped).toBe(true);
    expect(first.history).toHaveLength(2);
    // A kill after logging epoch 3 but before its checkpoint, mid-way through a line.
    fs.appendFileSync(first.logFile, `${JSON.stringify({ type: 'epoch', epoch: 3, trainLoss: 1 })}\n{"type":"epo`);
    const config = cfg('generator', 'resumed', extra);
    await expect(metaTrain(config)).rejects.toThrow(/already holds a run.*--resume/);
    const second = await metaTrain(config, { resume: true });
    expect(second.epochsRun).toBe(2);
    expect(second.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    straight.history.forEach((e, i) => {
      expect(second.history[i].lr).toBe(e.lr);
      expect(second.history[i].trainLoss).toBeCloseTo(e.trainLoss, 4);
      expect(second.history[i].validLoss).toBeCloseTo(e.validLoss, 4);
    });
    const lines = logLines(second.logFile).map((l) => (l.type === 'epoch' ? l.epoch : l.type));
    expect(lines).toEqual(['start', 1, 2, 'resume', 3, 4, 'end']);
    const a = loadCheckpoint(path.join(straight.runDir, LAST_CHECKPOINT)).state;
    const b = loadCheckpoint(path.join(second.runDir, LAST_CHECKPOINT)).state;
    expect(maxDiff(a, b)).toBeLessThan(1e-6);
  });

  it('refuses to resume with changed settings or a finished run, and can train longer', async () => {
    const base = cfg('generator', 'straight', { scheduler: { threshold: 0.5, patience: 1 } });
    await expect(metaTrain({ ...base, lr: 1e-3 }, { resume: true })).rejects.toThrow(/'lr': differs from the run being resumed/);
    await expect(metaTrain({ ...base, scheduler: { ...base.scheduler, patience: 2 } }, { resume: true })).rejects.toThrow(/'scheduler\.patience'/);
    await expect(metaTrain(base, { resume: true })).rejects.toThrow(/'epochs': the run already finished epoch 4/);
    await expect(metaTrain({ ...base, model: 'predictor', hs: 32 }, { resume: true })).rejects.toThrow(/trains the generator/);
    const longer = await metaTrain({ ...base, epochs: 5 }, { resume: true });
    expect(longer.history.map((e) => e.epoch)).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('training data', () => {
  it('pairs each task with its best cell for the generator; every record for the predictor', async () => {
    const gen = await loadMetaData(cfg('generator', 'd1'), [nb201Space]);
    const pairs = [...gen.train, ...gen.valid];
    expect(pairs).toHaveLength(16);
    for (const p of pairs) {
      const best = Math.max(...fx.records.filter((r) => r.taskId === p.record.taskId).map((r) => r.accuracy));
      expect(p.record.accuracy).toBe(best);
    }
    expect([gen.train.length, gen.valid.length]).toEqual([12, 4]);
    const pred = await loadMetaData(cfg('predictor', 'd2'), [nb201Space]);
    expect([pred.train.length, pred.valid.length]).toEqual([48, 16]);
    // targets: ((acc - mean) / std) / 100 with the train split's statistics
    const e = pred.valid[0];
    expect(e.target).toBeCloseTo((e.record.accuracy - pred.stats!.mean) / pred.stats!.std / 100, 12);
    for (const d of [gen, pred]) for (const s of d.stores.values()) s.close();
  });

  it('draws features exactly as FeatureStore.sample does, from memory within the cache budget', () => {
    const store = FeatureStore.open(fx.store, { extractor: '*' });
    const stores = new Map([['cifar10', store]]);
    const classBytes = 100 * 48 * 4;
    for (const [budget, cached] of [[0, 0], [2.5 * classBytes, 2 * classBytes], [1e9, 4 * classBytes]] as const) {
      const sampler = new FeatureSampler(stores, budget);
      for (const numSample of [5, 150]) {
        // 150 > 100 rows per class: drawn with replacement, as the store does
        const classes = [7, 2, 9, 4];
        const a = sampler.sample('cifar10', classes, new Rng(5), numSample);
        const b = store.sample({ rng: new Rng(5), numSample, classes }).data;
        expect(a).toEqual(b);
      }
      expect(sampler.cachedBytes).toBe(cached);
    }
    store.close();
  });

  it('splits by whole tasks when asked', async () => {
    const d = await loadMetaData(cfg('predictor', 'd3', { splitBy: 'task', valid: 4 }), [nb201Space]);
    const trainTasks = new Set(d.train.map((e) => e.record.taskId));
    const validTasks = new Set(d.valid.map((e) => e.record.taskId));
    expect(validTasks.size).toBe(4);
    expect(d.valid).toHaveLength(16);
    expect([...validTasks].some((t) => trainTasks.has(t))).toBe(false);
    for (const s of d.stores.values()) s.close();
  });
});

describe('MobileNetV3 (OFA) records', () => {
  it('meta-trains both models on the 22-node OFA graphs', async () => {
    // 8 CIFAR-10 tasks x 4 of HELP's published OFA subnets, accuracy = the OFA accuracy predictor's stored output
    const help = loadHelpOfaArchs();
    const tasks = sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 8, classesPerTask: 3, seed: 7, idPrefix: 'm' });
    const database = path.join(fx.dir, 'mbv3.jsonl');
    const w = await MetaDatabaseWriter.open(database);
    await w.append(
      tasks.flatMap((t, k) =>
        [0, 1, 2, 3].map((j) => {
          const i = k * 4 + j;
          return { taskId: t.id, dataset: 'cifar10', classes: t.classes, searchSpace: 'mbv3', arch: mbv3Space.format(help.archs[i]), accuracy: help.ofaPredictorTop1[i] * 100, recipe: 'ofa-predictor', seed: null, time: '2026-11-29T00:00:00Z' };
        }),
      ),
    );
    w.close();
    for (const model of ['generator', 'predictor'] as const) {
      const res = await metaTrain({ ...cfg(model, `mbv3-${model}`, { epochs: 2, valid: 0.25, searchSpace: 'mbv3' }), database });
      expect(res.history).toHaveLength(2);
      expect(res.history.every((e) => Number.isFinite(e.trainLoss) && Number.isFinite(e.validLoss))).toBe(true);
      expect(res.history[1].trainLoss).toBeLessThan(res.history[0].trainLoss);
      const ck = loadCheckpoint(res.lastCheckpoint!);
      expect(ck.meta).toMatchObject({ model, config: { searchSpace: 'mbv3' } });
      // the decoder's type head has one logit per vertex type: 29 for OFA MobileNetV3
      if (model === 'generator') expect(ck.state.get('add_vertex.2.weight')!.shape[0]).toBe(29);
    }
  });
});

describe('run directory lock', () => {
  it('refuses a run directory in use by a live process, takes over a stale lock, and cleans up', async () => {
    const config = cfg('generator', 'locked', { epochs: 1 });
    fs.mkdirSync(config.out, { recursive: true });
    const lock = path.join(config.out, 'run.lock');
    fs.writeFileSync(lock, JSON.stringify({ pid: process.pid, host: os.hostname() }));
    await expect(metaTrain(config)).rejects.toThrow(new RegExp(`'out': .*locked is in use by process ${process.pid}`));
    // a dead owner (a pid far above the kernel's pid_max) is a stale lock
    fs.writeFileSync(lock, JSON.stringify({ pid: 2 ** 30, host: os.hostname() }));
    const res = await metaTrain(config);
    expect(res.history).toHaveLength(1);
    expect(fs.existsSync(lock)).toBe(false);
    // a failed start leaves no empty run directory behind
    await expect(metaTrain({ ...config, out: path.join(fx.dir, 'never'), valid: 99 })).rejects.toThrow(/'valid'/);
    expect(fs.existsSync(path.join(fx.dir, 'never'))).toBe(false);
  });
});

describe('bad data', () => {
  it('names the dataset without a feature store, the record line and the key', async () => {
    const config = { ...cfg('predictor', 'bad1'), features: { svhn: fx.store } };
    const e = await metaTrain(config).catch((x: Error) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(/'features': no feature store for dataset 'cifar10' \(used by .*db\.csv line 2\)/);
  });

  it('rejects a validation split as large as the data', async () => {
    await expect(metaTrain(cfg('generator', 'bad2', { valid: 16 }))).rejects.toThrow(/'valid': 16 validation records but only 16 examples/);
    await expect(metaTrain(cfg('generator', 'bad3', { valid: 16, splitBy: 'task' }))).rejects.toThrow(/'valid': 16 validation tasks but only 16 tasks/);
    await expect(metaTrain(cfg('generator', 'bad3b', { valid: 0.99 }))).rejects.toThrow(/'valid': a fraction 0.99 of 16 examples leaves nothing to train on/);
  });

  it('names file, line and field of a bad database row and of a missing search space', async () => {
    const db = path.join(fx.dir, 'bad.csv');
    const lines = fs.readFileSync(fx.database, 'utf8').split('\n');
    lines[3] = lines[3].replace(/\|[a-z_0-9]+~0\|/, '|conv_9x9~0|');
    fs.writeFileSync(db, lines.join('\n'));
    const e = await metaTrain({ ...cfg('generator', 'bad4'), database: db }).catch((x: Error) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).toMatch(new RegExp(`bad\\.csv, line 4, field 'arch'`));
    await expect(metaTrain({ ...cfg('generator', 'bad5'), searchSpace: 'nb301' })).rejects.toThrow(/unknown search space 'nb301'.*nb201, mbv3/);
    await expect(metaTrain({ ...cfg('generator', 'bad5'), searchSpace: 'mbv3' })).rejects.toThrow(/db\.csv: no records of search space 'mbv3' \(the file holds nb201: set searchSpace\)/);
  });

  it('refuses a feature store from another extractor', async () => {
    await expect(metaTrain({ ...cfg('generator', 'bad6'), extractor: 'mobilenet_v1_1.0@96' })).rejects.toThrow(/made by 'pixels-4x4', but 'mobilenet_v1_1.0@96' is expected/);
  });
});
