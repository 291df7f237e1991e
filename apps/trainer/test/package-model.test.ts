import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { FeatureStore, MetaDatabaseWriter, sampleTasks } from '@metad2a/data-pipeline';
import { writePixelStore } from './pixel-store.js';
import { initBackend, loadCheckpoint } from '@metad2a/nn';
import { loadSearchModel, modelScorer, PredictorScorer } from '@metad2a/search';
import { Rng, spearman } from '@metad2a/core';
import { nb201Space } from '@metad2a/search-space-201';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = path.join(root, 'apps/trainer/dist/index.js');
const shared = path.resolve(root, '../shared/data');
let dir: string;

/** Real data, small: CIFAR-10 subset images pooled to 4x4 RGB (48 features) and NB201 12-epoch accuracies. */
async function fixture(): Promise<{ database: string; store: string }> {
  const store = path.join(dir, 'cifar10-pixels.json');
  await writePixelStore(store, shared);
  const table = fs.readFileSync(path.join(shared, 'nb201', 'nb201_12epoch_valid_test.csv'), 'utf8').split('\n');
  const cols = table[0].split(',');
  const archs = table.slice(1, 41).map((l) => l.split(',')).map((f) => ({ arch: f[cols.indexOf('cellstr')], accuracy: Number(f[cols.indexOf('cifar10-val')]) }));
  const tasks = sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 10, classesPerTask: 3, seed: 5, idPrefix: 'p' });
  const database = path.join(dir, 'db.csv');
  const w = await MetaDatabaseWriter.open(database);
  await w.append(tasks.flatMap((t, k) => [0, 1, 2].map((j) => ({ taskId: t.id, dataset: 'cifar10', classes: t.classes, searchSpace: 'nb201', ...archs[(k * 3 + j) % 40], recipe: 'nb201-12ep-table', seed: null, time: '2026-11-29T00:00:00Z' }))));
  w.close();
  return { database, store };
}

beforeAll(async () => {
  await initBackend({ quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'package-model-'));
  const { database, store } = await fixture();
  const common = ['meta-train', '--database', database, '--features', `cifar10=${store}`, '--epochs', '1', '--batch-size', '8', '--valid', '6', '--checkpoint-every', '1'];
  await run(process.execPath, [cli, ...common, '--model', 'generator', '--out', path.join(dir, 'gen')], { env: { ...process.env, METAD2A_QUIET: '1' } });
  await run(process.execPath, [cli, ...common, '--model', 'predictor', '--hs', '64', '--out', path.join(dir, 'pred')], { env: { ...process.env, METAD2A_QUIET: '1' } });
  // another seed of the same predictor setup, for an ensemble
  await run(process.execPath, [cli, ...common, '--model', 'predictor', '--hs', '64', '--seed', '7', '--out', path.join(dir, 'pred7')], { env: { ...process.env, METAD2A_QUIET: '1' } });
}, 180_000);

describe('trainer package-model', () => {
  it('assembles a search model that loads with the trained weights, target statistics and default dataset', async () => {
    const out = path.join(dir, 'model');
    const gen = path.join(dir, 'gen', 'ckpt_1.json');
    const pred = path.join(dir, 'pred', 'ckpt_1.json');
    const { stdout } = await run(process.execPath, [cli, 'package-model', '--generator', gen, '--predictor', pred, '--out', out, '--name', 'test', '--default-dataset', path.join(dir, 'cifar10-pixels.json')]);
    expect(stdout).toMatch(/nb201 model 'test', extractor pixels-4x4, 48-d/);
    const model = loadSearchModel(out);
    const predState = loadCheckpoint(pred);
    expect(model.manifest.predictor.targetMean).toBe((predState.meta as { targetStats: { mean: number } }).targetStats.mean);
    expect(model.manifest.predictor.hs).toBe(64);
    expect(model.manifest.scoreRepeats).toBe(10);
    for (const [name, v] of model.predictor.namedParameters()) expect(Array.from(v.dataSync())).toEqual(Array.from(predState.state.get(name)!.data));
    const genState = loadCheckpoint(gen).state;
    for (const [name, v] of model.generator.namedParameters()) expect(Array.from(v.dataSync())).toEqual(Array.from(genState.get(name)!.data));
    model.dispose();
    const store = FeatureStore.open(path.join(out, 'default-dataset.json'), { extractor: 'pixels-4x4' });
    expect(store.classes).toHaveLength(10);
    store.close();
  });

  it('assembles an ensemble from repeated --predictor: ranks by the mean of the predictors\' accuracies', async () => {
    const out = path.join(dir, 'ensemble');
    const gen = path.join(dir, 'gen', 'ckpt_1.json');
    const [p1, p7] = [path.join(dir, 'pred', 'ckpt_1.json'), path.join(dir, 'pred7', 'ckpt_1.json')];
    const { stdout } = await run(process.execPath, [cli, 'package-model', '--generator', gen, '--predictor', p1, '--predictor', p7, '--out', out, '--name', 'ens', '--default-dataset', path.join(dir, 'cifar10-pixels.json')]);
    expect(stdout).toMatch(/2 predictors averaged/);
    const model = loadSearchModel(out);
    try {
      expect(model.predictors).toHaveLength(2);
      const meta7 = loadCheckpoint(p7);
      expect(model.manifest.extraPredictors).toHaveLength(1);
      expect(model.manifest.extraPredictors![0].targetMean).toBe((meta7.meta as { targetStats: { mean: number } }).targetStats.mean);
      for (const [name, v] of model.predictors[1].predictor.namedParameters()) expect(Array.from(v.dataSync())).toEqual(Array.from(meta7.state.get(name)!.data));
      const store = FeatureStore.open(path.join(out, 'default-dataset.json'), { extractor: 'pixels-4x4' });
      const s = store.sample({ rng: new Rng(1), numSample: model.manifest.numSample });
      store.close();
      const ds = { x: s.data, numClasses: s.classes.length, numSample: s.numSample, dim: s.dims };
      const dags = [...nb201Space.enumerate!()].slice(0, 200).map((a) => nb201Space.toDag(a));
      const got = modelScorer(model).score(ds, dags);
      // reference: each predictor alone, turned into accuracies with its own statistics, averaged, back on the first's scale
      const acc = model.predictors.map((m) => Array.from(new PredictorScorer(m.predictor).score(ds, dags), (x) => x * 100 * m.targetStd + m.targetMean));
      const [m0, s0] = [model.predictors[0].targetMean, model.predictors[0].targetStd];
      const ref = dags.map((_, i) => ((acc[0][i] + acc[1][i]) / 2 - m0) / s0 / 100);
      for (let i = 0; i < dags.length; i++) expect(got[i]).toBeCloseTo(ref[i], 6);
      // and it is neither predictor alone
      expect(spearman(Array.from(got), acc[0])).toBeLessThan(0.9999);
      expect(spearman(Array.from(got), acc[1])).toBeLessThan(0.9999);
    } finally {
      model.dispose();
    }
    // a damaged extra entry is named
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    manifest.extraPredictors[0].targetStd = 0;
    fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(manifest));
    expect(() => loadSearchModel(out)).toThrow(/model\.json.*extraPredictors\[0\]\.targetStd/);
    // packaging one predictor into the same folder leaves no second predictor behind
    await run(process.execPath, [cli, 'package-model', '--generator', gen, '--predictor', p1, '--out', out, '--name', 'single']);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('predictor-2'))).toEqual([]);
    const single = loadSearchModel(out);
    expect(single.predictors).toHaveLength(1);
    expect(single.manifest.extraPredictors).toBeUndefined();
    single.dispose();
  });

  it('refuses a generator checkpoint given as the predictor, in one line', async () => {
    const gen = path.join(dir, 'gen', 'ckpt_1.json');
    const err = await run(process.execPath, [cli, 'package-model', '--generator', gen, '--predictor', gen, '--out', path.join(dir, 'bad'), '--name', 'x']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr.trim()).toMatch(/^error: .*ckpt_1\.json, field 'model': is a 'generator' checkpoint, a predictor checkpoint is needed$/);
    expect(fs.existsSync(path.join(dir, 'bad', 'model.json'))).toBe(false);
  });

  it('names a missing default-dataset manifest in one line', async () => {
    const [gen, pred] = [path.join(dir, 'gen', 'ckpt_1.json'), path.join(dir, 'pred', 'ckpt_1.json')];
    const missing = path.join(dir, 'no-such-store.json');
    const err = await run(process.execPath, [cli, 'package-model', '--generator', gen, '--predictor', pred, '--out', path.join(dir, 'bad2'), '--name', 'x', '--default-dataset', missing]).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr.trim()).toMatch(/^error: .*no-such-store\.json: cannot read the default dataset's feature store manifest: ENOENT/);
  });
});
