import { beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { Rng, spearman } from '@metad2a/core';
import { initBackend, importTorchStateDict, readF32Bundle } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { loadNb201Table, nb201Cost, nb201Space, type Nb201Arch, type Nb201Table } from '@metad2a/search-space-201';
import {
  evaluateProtocol,
  GeneratorCandidates,
  MetricScorer,
  PredictorScorer,
  RandomArchGenerator,
  RandomGraphGenerator,
  runSearch,
  type DatasetSample,
} from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const shared = path.resolve(here, '../../../../shared');
const fixture = readF32Bundle(path.join(shared, 'fixtures/metad2a-parity/manifest.json'));
let table: Nb201Table;

/** The parity fixture's real ResNet-18 features of three datasets (10 classes x 20 samples x 512). */
function fixtureDataset(i: number): DatasetSample {
  const x = fixture.get('generator_case/input_X');
  const per = 200 * 512;
  return { x: x.data.slice(i * per, (i + 1) * per), numClasses: 10, numSample: 20, dim: 512 };
}
const flopsOf = (a: Nb201Arch) => ({ mflops: nb201Cost(a).flops, mparams: nb201Cost(a).params });

beforeAll(async () => {
  await initBackend({ quiet: true });
  table = await loadNb201Table();
});

describe('runSearch', () => {
  it('collects N unique valid cells from mostly invalid random graphs and counts what it dropped', () => {
    const res = runSearch({
      space: nb201Space,
      generator: new RandomGraphGenerator(nb201Space, 0.5),
      scorer: new MetricScorer(nb201Space, flopsOf),
      sampleDataset: () => fixtureDataset(0),
      numCandidates: 50,
      topK: 5,
      seed: 1,
      metrics: flopsOf,
    });
    const c = res.counts;
    expect(c.unique).toBe(50);
    expect(c.sampled).toBe(c.unique + c.invalid + c.duplicate);
    expect(c.invalid).toBeGreaterThan(0);
    expect(new Set(res.all.map((r) => r.text)).size).toBe(50);
    for (const r of res.all) expect(nb201Space.invalidReason(nb201Space.toDag(r.arch))).toBeNull();
    // ranked by score (FLOPs here), best first
    for (let i = 1; i < res.all.length; i++) expect(res.all[i - 1].score).toBeGreaterThanOrEqual(res.all[i].score);
    expect(res.ranked).toHaveLength(5);
  });

  it('applies constraints walking down the ranking, and says when none can be met', () => {
    const base = {
      space: nb201Space,
      generator: new RandomArchGenerator(nb201Space),
      scorer: new MetricScorer(nb201Space, flopsOf),
      sampleDataset: () => fixtureDataset(0),
      numCandidates: 100,
      topK: 3,
      seed: 2,
      metrics: flopsOf,
    };
    const res = runSearch({ ...base, constraints: { maxMflops: 100 } });
    expect(res.ranked.length).toBe(3);
    for (const r of res.ranked) expect(r.metrics.mflops!).toBeLessThanOrEqual(100);
    // the unconstrained best is above the bound, so the constrained top-1 is further down the ranking
    expect(res.all[0].metrics.mflops!).toBeGreaterThan(100);
    expect(() => runSearch({ ...base, constraints: { maxMflops: 1 } })).toThrow(/no candidate satisfies.*FLOPs <= 1 M.*relax/);
  });
});

describe('the original generator checkpoint through our search pipeline', () => {
  it('generates valid, unique NB201 cells for real dataset features and ranks them with a predictor', () => {
    const gen = new Generator(nb201Space, { hs: 56, nz: 56, featureDim: 512, numSample: 20 });
    gen.loadOriginal(importTorchStateDict(path.join(shared, 'data/metad2a-original/generator_ckpt_400.pt')));
    const pred = new Predictor(nb201Space, { hs: 512, nz: 56, featureDim: 512, numSample: 20 });
    pred.loadOriginal(fixture.group('predictor_state'));
    const before = tf.memory().numTensors;
    const res = runSearch({
      space: nb201Space,
      generator: new GeneratorCandidates(gen),
      scorer: new PredictorScorer(pred),
      sampleDataset: (rng: Rng) => fixtureDataset(rng.int(3)),
      numCandidates: 100,
      topK: 10,
      seed: 7,
      scoreRepeats: 3,
      metrics: flopsOf,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(res.counts.unique).toBe(100);
    // the meta-trained generator mostly decodes valid cells (a random-graph baseline rarely does)
    expect(res.counts.invalid / res.counts.sampled).toBeLessThan(0.5);
    const acc = res.all.map((r) => table.accuracy(r.arch, { dataset: 'cifar10', split: 'test', epochs: 200 }));
    // cells the original generator proposes for CIFAR-like data are better than the space's average (87.06)
    expect(acc.reduce((a, b) => a + b, 0) / acc.length).toBeGreaterThan(88);
    gen.dispose();
    pred.dispose();
  });
});

describe('evaluateProtocol', () => {
  it('reports top-1, best-of-top-k and baselines with the same number of lookups', () => {
    const truth = (a: Nb201Arch) => table.accuracy(a, { dataset: 'cifar10', split: 'test', epochs: 200 });
    const rep = evaluateProtocol({
      space: nb201Space,
      generator: new RandomArchGenerator(nb201Space),
      scorer: new MetricScorer(nb201Space, flopsOf),
      sampleDataset: () => fixtureDataset(0),
      numCandidates: 60,
      runs: 3,
      seed: 11,
      lookups: [1, 10],
      trueAccuracy: truth,
      metrics: flopsOf,
    });
    expect(rep.runs).toHaveLength(3);
    expect(rep.optimum).toBeCloseTo(94.3733, 3);
    for (const r of rep.runs) {
      expect(r.bestOfTop[1]).toBe(r.top1);
      expect(r.bestOfTop[10]).toBeGreaterThanOrEqual(r.top1);
      expect(r.bestOfTop[10]).toBeLessThanOrEqual(rep.optimum!);
      // the FLOPs scorer ranks exactly like the FLOPs heuristic
      expect(r.flops[10]).toBe(r.bestOfTop[10]);
      expect(r.random[10]).toBeGreaterThan(0);
    }
    // FLOPs correlate positively with NB201 accuracy
    expect(rep.spearman.mean).toBeGreaterThan(0.3);
    expect(rep.top1.n).toBe(3);
    expect(spearman([1, 2, 3], [1, 2, 3])).toBe(1);
  });

  it("keeps the FLOPs heuristic and random search fixed whatever the predictor (ties between equal FLOPs in generation order)", () => {
    const truth = (a: Nb201Arch) => table.accuracy(a, { dataset: 'cifar10', split: 'test', epochs: 200 });
    // a coarse cost (3x3 convolutions in the cell) so that many candidates tie for the heuristic
    const convs = (a: Nb201Arch) => ({ mflops: a.filter((op) => op === 'nor_conv_3x3').length });
    const run = (scorer: MetricScorer<Nb201Arch>) =>
      evaluateProtocol({
        space: nb201Space,
        generator: new RandomArchGenerator(nb201Space),
        scorer,
        sampleDataset: () => fixtureDataset(0),
        numCandidates: 200,
        runs: 3,
        seed: 5,
        lookups: [1, 3, 10],
        trueAccuracy: truth,
        metrics: convs,
      });
    // predictors that order cells of equal cost differently
    const byFlops = run(new MetricScorer(nb201Space, flopsOf));
    const byParams = run(new MetricScorer(nb201Space, flopsOf, 'mparams'));
    const byNegFlops = run(new MetricScorer(nb201Space, (a) => ({ mflops: -nb201Cost(a).flops })));
    expect(byNegFlops.runs.map((r) => r.top1)).not.toEqual(byFlops.runs.map((r) => r.top1));
    for (const other of [byParams, byNegFlops]) {
      expect(other.runs.map((r) => r.flops)).toEqual(byFlops.runs.map((r) => r.flops));
      expect(other.runs.map((r) => r.random)).toEqual(byFlops.runs.map((r) => r.random));
    }
  });
});
