import fs from 'node:fs';
import path from 'node:path';
import { InputError, writeFileAtomic } from '@metad2a/core';
import { loadCheckpoint } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { saveSearchModel, spaceById, type SearchModelManifest } from './model.js';

/** What meta-training writes into every model checkpoint's metadata (packages/meta-training). */
interface RunCheckpointMeta {
  model?: string;
  epoch?: number;
  config?: { searchSpace: string; hs: number; nz: number; numSample: number; featureDim: number; numHeads?: number; extractor: string };
  targetStats?: { mean: number; std: number } | null;
}

function readRunCheckpoint(file: string, expect: 'generator' | 'predictor') {
  const { state, meta } = loadCheckpoint(file);
  const m = meta as RunCheckpointMeta;
  if (m.model !== expect) throw new InputError({ file, field: 'model' }, `is a '${m.model ?? 'unknown'}' checkpoint, a ${expect} checkpoint is needed`);
  if (!m.config) throw new InputError({ file, field: 'config' }, 'checkpoint metadata has no model config', 'use a checkpoint written by metad2a-trainer meta-train');
  return { state, meta: m, config: m.config };
}

export interface PackageModelOptions {
  generatorCheckpoint: string;
  predictorCheckpoint: string;
  /** More predictor checkpoints (other seeds of the same setup): the model ranks by all predictors' mean accuracy. */
  extraPredictorCheckpoints?: string[];
  out: string;
  name: string;
  description?: string;
  /** A feature store to copy beside the model as its default dataset (default-dataset.json + data). */
  defaultDataset?: string;
  scoreRepeats?: number;
  provenance?: Record<string, unknown>;
}

/**
 * Assemble a search model folder from a meta-trained generator and predictor checkpoint: checks that
 * both were trained on the same space, extractor, feature width and samples per class, and takes the
 * predictor's target statistics from its checkpoint.
 */
export function packageSearchModel(opts: PackageModelOptions): SearchModelManifest {
  const g = readRunCheckpoint(opts.generatorCheckpoint, 'generator');
  const files = [opts.predictorCheckpoint, ...(opts.extraPredictorCheckpoints ?? [])];
  const runs = files.map((file) => {
    const p = readRunCheckpoint(file, 'predictor');
    for (const key of ['searchSpace', 'extractor', 'featureDim', 'numSample'] as const) {
      if (g.config[key] !== p.config[key]) {
        throw new InputError({ file, field: `config.${key}` }, `is ${p.config[key]}, but the generator was trained with ${g.config[key]}`);
      }
    }
    if (!p.meta.targetStats) throw new InputError({ file, field: 'targetStats' }, 'missing target statistics');
    return { ...p, file, targetStats: p.meta.targetStats };
  });
  const p = runs[0];
  const space = spaceById(g.config.searchSpace);
  const generator = new Generator(space, { hs: g.config.hs, nz: g.config.nz, featureDim: g.config.featureDim, numSample: g.config.numSample, numHeads: g.config.numHeads });
  const predictors = runs.map((r) => new Predictor(space, { hs: r.config.hs, nz: r.config.nz, featureDim: r.config.featureDim, numSample: r.config.numSample, numHeads: r.config.numHeads }));
  try {
    generator.loadStateDict(g.state, { strict: true, source: opts.generatorCheckpoint });
    runs.forEach((r, i) => predictors[i].loadStateDict(r.state, { strict: true, source: r.file }));
    const manifest = saveSearchModel(opts.out, {
      generator,
      predictor: predictors[0],
      extraPredictors: runs.slice(1).map((r, i) => ({ predictor: predictors[i + 1], targetMean: r.targetStats.mean, targetStd: r.targetStats.std })),
      manifest: {
        name: opts.name,
        space: space.id,
        extractor: g.config.extractor,
        featureDim: g.config.featureDim,
        numSample: g.config.numSample,
        scoreRepeats: opts.scoreRepeats ?? (space.id === 'nb201' ? 10 : 1),
        description: opts.description,
        provenance: {
          generator: { checkpoint: path.basename(opts.generatorCheckpoint), epoch: g.meta.epoch },
          predictor: { checkpoint: path.basename(opts.predictorCheckpoint), epoch: p.meta.epoch },
          ...(runs.length > 1 ? { extraPredictors: runs.slice(1).map((r) => ({ checkpoint: path.join(path.basename(path.dirname(r.file)), path.basename(r.file)), epoch: r.meta.epoch })) } : {}),
          ...opts.provenance,
        },
        targetMean: p.targetStats.mean,
        targetStd: p.targetStats.std,
      },
    });
    if (opts.defaultDataset) {
      const src = opts.defaultDataset.endsWith('.json') ? opts.defaultDataset : `${opts.defaultDataset}.json`;
      let m: { extractor: string; data: string };
      try {
        m = JSON.parse(fs.readFileSync(src, 'utf8'));
      } catch (e) {
        throw new InputError({ file: src }, `cannot read the default dataset's feature store manifest: ${(e as Error).message}`, 'give a feature store .json (e.g. datasets/features/cifar10.json)');
      }
      if (m.extractor !== g.config.extractor) throw new InputError({ file: src, field: 'extractor' }, `features by '${m.extractor}', the model expects '${g.config.extractor}'`);
      const dataName = 'default-dataset.bin';
      writeFileAtomic(path.join(opts.out, dataName), fs.readFileSync(path.join(path.dirname(src), m.data)));
      writeFileAtomic(path.join(opts.out, 'default-dataset.json'), `${JSON.stringify({ ...m, data: dataName }, null, 1)}\n`);
    }
    return manifest;
  } finally {
    generator.dispose();
    for (const x of predictors) x.dispose();
  }
}
