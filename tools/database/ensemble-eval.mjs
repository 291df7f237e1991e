#!/usr/bin/env node
// How much averaging predictors helps: the CIFAR-10 protocol of `metad2a evaluate` (10 runs, 500 candidates, lookups
// 1 and 30) and the Spearman over all 15,625 NB201 cells, ranking by the mean predicted accuracy of all the given
// models' predictors (EnsembleScorer, as a shipped ensemble ranks). Generator and dataset come from --generator DIR
// (default: the first model); one model alone reproduces `metad2a evaluate -c DIR --benchmark --runs 10` exactly.
// --lookups 1,30,500 adds budgets (500 = the best candidate generated: what any ranking of them could reach).
//   node tools/database/ensemble-eval.mjs [--generator datasets/models/default] [--lookups 1,30] MODEL_DIR [MODEL_DIR...]
import path from 'node:path';
import { initBackend } from '@metad2a/nn';
import { FeatureStore } from '@metad2a/data-pipeline';
import { loadNb201Table, nb201Space } from '@metad2a/search-space-201';
import { correlationOverSpace, EnsembleScorer, evaluateProtocol, GeneratorCandidates, loadSearchModel, modelScorer, spaceMetrics } from '@metad2a/search';

const args = process.argv.slice(2);
const g = args.indexOf('--generator');
const genDir = g >= 0 ? path.resolve(args.splice(g, 2)[1]) : null;
const l = args.indexOf('--lookups');
const numCandidates = 500;
const lookups = l >= 0 ? args.splice(l, 2)[1].split(',').map(Number) : [1, 30];
if (lookups.some((k) => !Number.isInteger(k) || k < 1 || k > numCandidates)) throw new Error(`--lookups: integers in 1..${numCandidates}, got ${lookups.join(',')}`);
const dirs = args.map((d) => path.resolve(d));
if (dirs.length === 0) throw new Error('usage: ensemble-eval.mjs [--generator DIR] MODEL_DIR [MODEL_DIR...]');
await initBackend({ quiet: true });
const models = dirs.map((d) => loadSearchModel(d));
const source = genDir ? loadSearchModel(genDir) : models[0];
for (const m of [source, ...models]) if (m.manifest.space !== 'nb201') throw new Error(`${m.dir}: an nb201 model is needed, got ${m.manifest.space}`);
const { extractor, numSample, scoreRepeats } = source.manifest;
const store = FeatureStore.open(path.join(source.dir, 'default-dataset.json'), { extractor });
const table = await loadNb201Table();
const truth = (a) => table.accuracy(nb201Space.format(a), { dataset: 'cifar10', split: 'test', epochs: 200 });
const sample = (rng) => {
  const s = store.sample({ rng, numSample });
  return { x: s.data, numClasses: s.classes.length, numSample: s.numSample, dim: s.dims };
};
// every predictor of every model, averaged as a shipped ensemble averages them (one model: its own scorer)
const ensemble = models.length === 1 ? modelScorer(models[0]) : new EnsembleScorer(models.flatMap((m) => m.predictors));
const rep = evaluateProtocol({
  space: nb201Space, generator: new GeneratorCandidates(source.generator), scorer: ensemble, sampleDataset: sample,
  numCandidates, scoreRepeats, runs: 10, seed: 0, lookups, trueAccuracy: truth, metrics: spaceMetrics(nb201Space, { numClasses: 10 }),
});
const space = correlationOverSpace(nb201Space, ensemble, sample, truth, { seed: 0, repeats: scoreRepeats });
const f = (s) => `${s.mean.toFixed(2)} ± ${s.ci95.toFixed(2)}`;
console.log(`${genDir ? `generator ${path.relative(process.cwd(), genDir)}, predictors ` : ''}${dirs.map((d) => path.relative(process.cwd(), d)).join(' + ')}: top-1 ${f(rep.top1)}, ${lookups.filter((k) => k > 1).map((k) => `best of top-${k} ${f(rep.bestOfTop[k])}, `).join('')}` +
  `Spearman over candidates ${rep.spearman.mean.toFixed(3)}, over all ${space.n} cells ${space.spearman.toFixed(3)}`);
