#!/usr/bin/env node
// Spearman/Kendall of a search model's predictor with the NB201 200-epoch CIFAR-10 table over all 15,625 cells,
// scoring against the model's default dataset (10 fresh samples averaged, as at search time; all predictors of an ensemble).
//   node tools/database/space-correlation.mjs datasets/models/default
import path from 'node:path';
import { initBackend } from '@metad2a/nn';
import { FeatureStore } from '@metad2a/data-pipeline';
import { loadNb201Table, nb201Space } from '@metad2a/search-space-201';
import { correlationOverSpace, loadSearchModel, modelScorer } from '@metad2a/search';

await initBackend({ quiet: true });
const dir = path.resolve(process.argv[2] ?? 'datasets/models/default');
const model = loadSearchModel(dir);
const store = FeatureStore.open(path.join(dir, 'default-dataset.json'), { extractor: model.manifest.extractor });
const table = await loadNb201Table();
const sample = (rng) => {
  const s = store.sample({ rng, numSample: model.manifest.numSample });
  return { x: s.data, numClasses: s.classes.length, numSample: s.numSample, dim: s.dims };
};
const r = correlationOverSpace(nb201Space, modelScorer(model), sample, (a) => table.accuracy(a, { dataset: 'cifar10', split: 'test', epochs: 200 }), { seed: 0, repeats: model.manifest.scoreRepeats });
console.log(`${path.basename(dir)}: over all ${r.n} cells: Spearman ${r.spearman.toFixed(3)}, Kendall ${r.kendall.toFixed(3)} (Kendall on every ${Math.floor(r.n / 3000)}th cell)`);
