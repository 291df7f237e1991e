import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { ConfigError, InputError, writeFileAtomic } from '@metad2a/core';
import { ProgressBar } from '@metad2a/cli-kit';
import { initBackend } from '@metad2a/nn';
import { loadNb201Table, normalizeDataset, type Nb201Dataset, type Nb201Table } from '@metad2a/search-space-201';
import { datasetFeatures, modelDefaultDataset, openSearchModel, storeSampler, type DatasetFeatures, type SearchModel } from '@metad2a/search';
import type { DatasetSampler } from '@metad2a/search';

export interface ModelArgs {
  checkpoint?: string;
  dataset?: string;
  space?: string;
  featuresExtractor?: string;
  extractorSource?: string;
  perClass?: number;
  allowFew?: boolean;
  cacheDir?: string;
  backend?: string;
  seed: number;
  quiet?: boolean;
}

/** Options every command that runs the models shares. */
export function modelOptions<T>(y: Argv<T>) {
  return y
    .option('dataset', { alias: 'd', type: 'string', describe: 'image folder, CIFAR .bin (or folder), IDX file/folder, mnist, fashion-mnist, .csv/.npy features, or a feature store .json (default: the model\'s default dataset)' })
    .option('checkpoint', { alias: 'c', type: 'string', describe: 'search model folder (model.json + checkpoints); default $METAD2A_MODEL or <repo>/datasets/models/default' })
    .option('space', { type: 'string', choices: ['nb201', 'mbv3'], describe: 'search space; must be the model\'s (default: the model\'s)' })
    .option('features-extractor', { type: 'string', describe: 'extractor id of a .csv/.npy features file that does not name one' })
    .option('extractor-source', { type: 'string', describe: 'MobileNet v1 model.json folder or URL used to embed images (default: Google\'s copy, cached)' })
    .option('per-class', { type: 'number', default: 100, describe: 'images per class embedded for image datasets (0 = all)' })
    .option('allow-few', { type: 'boolean', default: false, describe: 'allow classes with fewer images than the model samples per class (sampled with replacement)' })
    .option('cache-dir', { type: 'string', describe: 'feature-store cache folder (default ~/.cache/metad2a/features, or $METAD2A_CACHE_DIR/features)' })
    .option('seed', { type: 'number', default: 0, describe: 'random seed' })
    .option('backend', { type: 'string', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu (default $METAD2A_BACKEND or auto)' });
}

export interface Loaded {
  model: SearchModel;
  features: DatasetFeatures;
  datasetSpec: string;
  sampler: DatasetSampler;
  timings: { backendSeconds: number; loadModelSeconds: number; featuresSeconds: number };
}

/** Backend, model, dataset features: the shared start of search and evaluate. */
export async function loadModelAndFeatures(a: ModelArgs): Promise<Loaded> {
  const t0 = performance.now();
  await initBackend({ force: a.backend, quiet: true });
  const t1 = performance.now();
  const model = openSearchModel(a.checkpoint);
  const t2 = performance.now();
  if (a.space && a.space !== model.manifest.space) {
    model.dispose();
    throw new ConfigError('space', `the model at ${model.dir} searches '${model.manifest.space}', not '${a.space}'`, `pass --checkpoint with a ${a.space} model, or drop --space`);
  }
  let spec: string;
  try {
    spec = a.dataset ?? modelDefaultDataset(model);
  } catch (e) {
    model.dispose();
    throw e;
  }
  let bar: ProgressBar | null = null;
  let features: DatasetFeatures;
  try {
    features = await datasetFeatures(spec, {
      extractor: model.manifest.extractor,
      featureDim: model.manifest.featureDim,
      numSample: model.manifest.numSample,
      featuresExtractor: a.featuresExtractor,
      extractorSource: a.extractorSource,
      perClass: a.perClass,
      allowFew: a.allowFew,
      cacheDir: a.cacheDir,
      onProgress: (done, total) => {
        if (a.quiet) return;
        bar ??= new ProgressBar('dataset features', total);
        bar.update(done);
      },
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  const t3 = performance.now();
  return {
    model,
    features,
    datasetSpec: spec,
    sampler: storeSampler(features.store, model.manifest.numSample),
    timings: { backendSeconds: (t1 - t0) / 1000, loadModelSeconds: (t2 - t1) / 1000, featuresSeconds: (t3 - t2) / 1000 },
  };
}

export interface BenchmarkArgs {
  benchmark?: string;
  benchmarkDataset: string;
}

export function benchmarkOptions<T>(y: Argv<T>) {
  return y
    .option('benchmark', { type: 'string', describe: 'NAS-Bench-201 table (nats_bench.csv) for true accuracies; give it without a value for the default table' })
    .option('benchmark-dataset', { type: 'string', default: 'cifar10', describe: 'which accuracy of the table: cifar10, cifar100, ImageNet16-120' });
}

export interface Benchmark {
  table: Nb201Table;
  dataset: Nb201Dataset;
  file: string;
  accuracy(archText: string): number;
}

/** The NB201 table and the accuracy column to look up (200-epoch test accuracy). */
export async function openBenchmark(file: string | undefined, datasetName: string, space: string): Promise<Benchmark> {
  if (space !== 'nb201') throw new ConfigError('benchmark', `benchmark tables exist for nb201 only, this model searches '${space}'`);
  const dataset = normalizeDataset(datasetName);
  const table = await loadNb201Table(file ? path.resolve(file) : undefined);
  const query = { dataset, split: 'test', epochs: 200 } as const;
  table.column(query);
  return { table, dataset, file: table.sources.main, accuracy: (s) => table.accuracy(s, query) };
}

export function writeJson(file: string, value: unknown): string {
  const p = path.resolve(file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  writeFileAtomic(p, `${JSON.stringify(value, null, 2)}\n`);
  return p;
}

export function readJson<T>(file: string, what: string): T {
  if (!fs.existsSync(file)) throw new InputError({ file }, `${what} not found`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
}

/** "a,b,c" -> numbers, each checked. */
export function parseNumberList(text: string, field: string): number[] {
  const out = text.split(',').map((s) => Number(s.trim()));
  if (!out.length || out.some((v) => !Number.isInteger(v) || v < 1)) throw new ConfigError(field, `'${text}'`, 'a comma-separated list of positive integers, e.g. 1,30');
  return out;
}

export const r2 = (x: number) => Math.round(x * 100) / 100;
export const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
