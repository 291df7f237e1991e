import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { FeatureStore, openDataset, encodeDataset, loadMobileNetExtractor } from '@metad2a/data-pipeline';
import { nb201Space, type Nb201Arch } from '@metad2a/search-space-201';
import { mbv3Space, ofaCost, type OfaConfig } from '@metad2a/search-space-mbv3';
import { GeneratorCandidates, loadSearchModel, modelScorer, runSearch, spaceMetrics, type DatasetSample, type SearchModel } from '../src/index.js';
import fs from 'node:fs';
import os from 'node:os';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
let model: SearchModel;
let mnist: FeatureStore;

beforeAll(async () => {
  await initBackend({ quiet: true });
  model = loadSearchModel(path.join(root, 'datasets/models/default'));
  // a small real dataset the model has not searched for before: 20 MNIST test images per class, embedded now
  const extractor = await loadMobileNetExtractor({ source: path.resolve(root, '../shared/data/mobilenet-v1-imagenet'), inputSize: 96 });
  expect(extractor.id).toBe(model.manifest.extractor);
  const ds = await openDataset('mnist', { split: 'test' });
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shipped-')), 'mnist-test.json');
  mnist = await encodeDataset(ds, { out, extractor, perClass: 20, seed: 1 });
}, 180_000);

const sampler = (rng: Rng): DatasetSample => {
  const s = mnist.sample({ rng, numSample: model.manifest.numSample });
  return { x: s.data, numClasses: s.classes.length, numSample: s.numSample, dim: s.dims };
};

describe('the shipped search model', () => {
  it('ships a bagged ensemble: two seeds on the whole database and on each of its two halves', () => {
    expect(model.predictors).toHaveLength(6);
    expect(model.manifest.extraPredictors).toHaveLength(5);
    // predictors of different data differ: each has its own weights and target statistics
    expect(new Set(model.predictors.map((p) => p.targetMean)).size).toBeGreaterThan(2);
  });

  it('searches a small real dataset: valid, unique cells, ranked', () => {
    const res = runSearch({ space: nb201Space, generator: new GeneratorCandidates(model.generator), scorer: modelScorer(model), sampleDataset: sampler, numCandidates: 100, topK: 5, seed: 3, scoreRepeats: model.manifest.scoreRepeats });
    expect(res.counts.unique).toBe(100);
    expect(new Set(res.all.map((c) => nb201Space.canonicalKey(c.arch))).size).toBeGreaterThan(50);
    for (const c of res.all) expect(nb201Space.invalidReason(nb201Space.toDag(c.arch))).toBeNull();
    expect(res.ranked).toHaveLength(5);
  });

  it('prefers cells with convolutions over cells of only skip, pool and none', () => {
    const noConv: Nb201Arch[] = [];
    const withConv: Nb201Arch[] = [];
    for (const a of nb201Space.enumerate!()) (a.some((op) => op.startsWith('nor_conv')) ? withConv : noConv).push(a);
    const rng = new Rng(9);
    const convSample = Array.from({ length: noConv.length }, () => rng.choice(withConv));
    const scorer = modelScorer(model);
    const datasets = Array.from({ length: 3 }, (_, i) => sampler(new Rng(100 + i)));
    const mean = (xs: Float32Array) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const sConv = mean(scorer.scoreMean!(datasets, convSample.map((a) => nb201Space.toDag(a))));
    const sNone = mean(scorer.scoreMean!(datasets, noConv.map((a) => nb201Space.toDag(a))));
    expect(sConv).toBeGreaterThan(sNone);
  });
});

describe('the shipped MBV3 search model (datasets/models/mbv3)', () => {
  it('searches a small real dataset under a FLOPs bound: valid, unique subnets within the bound, ranked', () => {
    const mbv3 = loadSearchModel(path.join(root, 'datasets/models/mbv3'));
    try {
      expect(mbv3.manifest.space).toBe('mbv3');
      expect(mbv3.manifest.extractor).toBe(model.manifest.extractor);
      const res = runSearch({
        space: mbv3Space,
        generator: new GeneratorCandidates(mbv3.generator),
        scorer: modelScorer(mbv3),
        sampleDataset: sampler,
        numCandidates: 100,
        topK: 5,
        seed: 3,
        scoreRepeats: mbv3.manifest.scoreRepeats,
        metrics: spaceMetrics(mbv3Space, { numClasses: 10 }),
        constraints: { maxMflops: 300 },
      });
      expect(res.counts.unique).toBe(100);
      expect(new Set(res.all.map((c) => mbv3Space.canonicalKey(c.arch as OfaConfig))).size).toBeGreaterThan(90);
      for (const c of res.all) expect(mbv3Space.invalidReason(mbv3Space.toDag(c.arch as OfaConfig))).toBeNull();
      // the generator proposes mostly valid graphs (it learned the space's per-stage depth rule)
      expect(res.counts.invalid).toBeLessThan(res.counts.sampled / 2);
      expect(res.ranked).toHaveLength(5);
      for (const c of res.ranked) expect(ofaCost(c.arch as OfaConfig).mflops).toBeLessThanOrEqual(300);
      for (let i = 1; i < res.ranked.length; i++) expect(res.ranked[i - 1].score).toBeGreaterThanOrEqual(res.ranked[i].score);
    } finally {
      mbv3.dispose();
    }
  });
});
