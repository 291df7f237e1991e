import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { InputError, writeFileAtomic, type ArchDag, type Rng, type SearchSpace } from '@metad2a/core';
import { loadCheckpoint, saveCheckpoint } from '@metad2a/nn';
import { Generator } from '@metad2a/dag-vae';
import { Predictor } from '@metad2a/predictor';
import { nb201Space } from '@metad2a/search-space-201';
import { mbv3Space } from '@metad2a/search-space-mbv3';
import type { CandidateGenerator, CandidateScorer, DatasetSample } from './types.js';

export const SEARCH_MODEL_FORMAT = 'metad2a-search-model';
export const SEARCH_MODEL_VERSION = 1;

/** The search spaces this build knows, by id. */
export const SPACES: Record<string, SearchSpace<any>> = { nb201: nb201Space, mbv3: mbv3Space };

export function spaceById(id: string, where: { file?: string; field?: string } = {}): SearchSpace<any> {
  const s = SPACES[id];
  if (!s) throw new InputError(where, `unknown search space '${id}'`, `known: ${Object.keys(SPACES).join(', ')}`);
  return s;
}

/**
 * A meta-trained model as shipped: generator and predictor checkpoints plus what they expect
 * (search space, feature extractor, feature width, samples per class, target statistics).
 */
export interface SearchModelManifest {
  format: typeof SEARCH_MODEL_FORMAT;
  version: number;
  name: string;
  space: string;
  /** Extractor id of the features it was trained on; datasets must be encoded with the same one. */
  extractor: string;
  featureDim: number;
  numSample: number;
  generator: { checkpoint: string; hs: number; nz: number };
  predictor: PredictorEntry;
  /**
   * More predictors of the same space and features (e.g. other meta-training seeds): candidates are ranked by
   * the mean of all predictors' accuracies, reported on `predictor`'s score scale. Absent: `predictor` alone.
   */
  extraPredictors?: PredictorEntry[];
  /** Predictions averaged over this many dataset samples at search time (NB201 original: 10). */
  scoreRepeats: number;
  description?: string;
  provenance?: Record<string, unknown>;
}

/** A predictor checkpoint of a model and the statistics that turn its scores back into accuracies. */
export interface PredictorEntry {
  checkpoint: string;
  hs: number;
  nz: number;
  targetMean: number;
  targetStd: number;
}

/** A loaded predictor with its target statistics (score = ((accuracy - targetMean) / targetStd) / 100). */
export interface ScaledPredictor {
  predictor: Predictor;
  targetMean: number;
  targetStd: number;
}

export interface SearchModel {
  dir: string;
  manifest: SearchModelManifest;
  space: SearchSpace<any>;
  generator: Generator;
  /** The main predictor (the manifest's `predictor`). */
  predictor: Predictor;
  /** Every predictor, the main one first, with its statistics; more than one for an ensemble. */
  predictors: ScaledPredictor[];
  dispose(): void;
}

function readManifest(dir: string): SearchModelManifest {
  const file = path.join(dir, 'model.json');
  if (!fs.existsSync(file)) throw new InputError({ file }, 'search model manifest not found', 'point --checkpoint at a folder made by `metad2a-trainer meta-train` (it holds model.json)');
  let m: SearchModelManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
  const need = (cond: boolean, field: string, problem: string) => {
    if (!cond) throw new InputError({ file, field }, problem);
  };
  need(m.format === SEARCH_MODEL_FORMAT, 'format', `expected '${SEARCH_MODEL_FORMAT}', got '${m.format}'`);
  need(m.version === SEARCH_MODEL_VERSION, 'version', `unsupported version ${m.version}`);
  need(typeof m.extractor === 'string' && m.extractor.length > 0, 'extractor', 'missing');
  need(Number.isInteger(m.featureDim) && m.featureDim > 0, 'featureDim', `invalid ${m.featureDim}`);
  need(Number.isInteger(m.numSample) && m.numSample > 0, 'numSample', `invalid ${m.numSample}`);
  need(typeof m.generator?.checkpoint === 'string', 'generator.checkpoint', 'missing');
  need(typeof m.predictor?.checkpoint === 'string', 'predictor.checkpoint', 'missing');
  need(Number.isFinite(m.predictor?.targetMean) && m.predictor.targetStd > 0, 'predictor.targetStd', 'target statistics missing or invalid');
  if (m.extraPredictors !== undefined) {
    need(Array.isArray(m.extraPredictors), 'extraPredictors', 'must be a list of predictor entries');
    m.extraPredictors.forEach((e, i) => {
      need(typeof e?.checkpoint === 'string', `extraPredictors[${i}].checkpoint`, 'missing');
      need(Number.isInteger(e.hs) && e.hs > 0 && Number.isInteger(e.nz) && e.nz > 0, `extraPredictors[${i}].hs`, 'hs and nz must be positive integers');
      need(Number.isFinite(e.targetMean) && e.targetStd > 0, `extraPredictors[${i}].targetStd`, 'target statistics missing or invalid');
    });
  }
  need(Number.isInteger(m.scoreRepeats) && m.scoreRepeats > 0, 'scoreRepeats', `invalid ${m.scoreRepeats}`);
  spaceById(m.space, { file, field: 'space' });
  return m;
}

/** Load a shipped or freshly trained search model (strict: every parameter present with its shape). */
export function loadSearchModel(dir: string): SearchModel {
  const manifest = readManifest(dir);
  const space = spaceById(manifest.space);
  const generator = new Generator(space, { hs: manifest.generator.hs, nz: manifest.generator.nz, featureDim: manifest.featureDim, numSample: manifest.numSample });
  const entries = [manifest.predictor, ...(manifest.extraPredictors ?? [])];
  const predictors: ScaledPredictor[] = entries.map((e) => ({
    predictor: new Predictor(space, { hs: e.hs, nz: e.nz, featureDim: manifest.featureDim, numSample: manifest.numSample }),
    targetMean: e.targetMean,
    targetStd: e.targetStd,
  }));
  const dispose = () => {
    generator.dispose();
    for (const p of predictors) p.predictor.dispose();
  };
  try {
    const g = path.join(dir, manifest.generator.checkpoint);
    generator.loadStateDict(loadCheckpoint(g).state, { strict: true, source: g });
    entries.forEach((e, i) => {
      const p = path.join(dir, e.checkpoint);
      predictors[i].predictor.loadStateDict(loadCheckpoint(p).state, { strict: true, source: p });
    });
  } catch (e) {
    dispose();
    throw e;
  }
  return { dir, manifest, space, generator, predictor: predictors[0].predictor, predictors, dispose };
}

/** What ranks candidates for a model: its predictor, or the mean of its predictors when it has several. */
export function modelScorer(model: Pick<SearchModel, 'predictors'>): CandidateScorer {
  return model.predictors.length === 1 ? new PredictorScorer(model.predictors[0].predictor) : new EnsembleScorer(model.predictors);
}

/**
 * Write a search model folder: the checkpoints and model.json (atomically, manifest last). `extraPredictors`
 * make an ensemble (predictor-2.json, predictor-3.json, ...).
 */
export function saveSearchModel(
  dir: string,
  parts: {
    generator: Generator;
    predictor: Predictor;
    extraPredictors?: ScaledPredictor[];
    manifest: Omit<SearchModelManifest, 'format' | 'version' | 'generator' | 'predictor' | 'extraPredictors'> & { targetMean: number; targetStd: number };
  },
): SearchModelManifest {
  fs.mkdirSync(dir, { recursive: true });
  saveCheckpoint(path.join(dir, 'generator.json'), parts.generator, { kind: 'generator' });
  saveCheckpoint(path.join(dir, 'predictor.json'), parts.predictor, { kind: 'predictor' });
  const extra = (parts.extraPredictors ?? []).map((e, i): PredictorEntry => {
    const checkpoint = `predictor-${i + 2}.json`;
    saveCheckpoint(path.join(dir, checkpoint), e.predictor, { kind: 'predictor' });
    return { checkpoint, hs: e.predictor.hs, nz: e.predictor.nz, targetMean: e.targetMean, targetStd: e.targetStd };
  });
  const { targetMean, targetStd, ...rest } = parts.manifest;
  const manifest: SearchModelManifest = {
    format: SEARCH_MODEL_FORMAT,
    version: SEARCH_MODEL_VERSION,
    ...rest,
    generator: { checkpoint: 'generator.json', hs: parts.generator.hs, nz: parts.generator.nz },
    predictor: { checkpoint: 'predictor.json', hs: parts.predictor.hs, nz: parts.predictor.nz, targetMean, targetStd },
    ...(extra.length ? { extraPredictors: extra } : {}),
  };
  writeFileAtomic(path.join(dir, 'model.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  // then (model.json no longer names them) drop predictors an earlier, larger ensemble left in this folder
  const stale = /^predictor-(\d+)(\.json|\.[0-9a-f]+\.bin)$/;
  for (const f of fs.readdirSync(dir)) {
    const m = stale.exec(f);
    if (m && Number(m[1]) > extra.length + 1) fs.rmSync(path.join(dir, f));
  }
  return manifest;
}

function datasetTensor(datasets: DatasetSample[]): tf.Tensor3D {
  const d0 = datasets[0];
  const rows = d0.numClasses * d0.numSample;
  const x = new Float32Array(datasets.length * rows * d0.dim);
  datasets.forEach((d, i) => {
    if (d.numClasses !== d0.numClasses || d.numSample !== d0.numSample || d.dim !== d0.dim) throw new InputError({ field: 'dataset' }, 'dataset samples differ in shape');
    x.set(d.x, i * rows * d0.dim);
  });
  return tf.tensor3d(x, [datasets.length, rows, d0.dim]);
}

function checkDataset(d: DatasetSample, featureDim: number, numSample: number): void {
  if (d.dim !== featureDim) throw new InputError({ field: 'features' }, `features have ${d.dim} dims, the model expects ${featureDim}`, 'encode the dataset with the extractor the model was trained with');
  if (d.numSample !== numSample) throw new InputError({ field: 'numSample' }, `${d.numSample} samples per class, the model expects ${numSample}`);
}

/**
 * The meta-test generator: z = mu of the dataset (eval mode), decoded `count` times with sampled
 * vertex types and edges, all graphs in one batch.
 */
export class GeneratorCandidates implements CandidateGenerator {
  constructor(private readonly generator: Generator) {}
  generate(dataset: DatasetSample, count: number, rng: Rng): ArchDag[] {
    checkDataset(dataset, this.generator.featureDim, this.generator.numSample);
    const z = tf.tidy(() => {
      const { mu } = this.generator.encodeDatasets(datasetTensor([dataset]));
      return tf.tile(mu, [count, 1]) as tf.Tensor2D;
    });
    try {
      return this.generator.sample(z, { mode: 'sample', rng });
    } finally {
      z.dispose();
    }
  }
}

/** The meta-performance predictor as a ranker; several dataset samples share one graph encoding. */
export class PredictorScorer implements CandidateScorer {
  constructor(private readonly predictor: Predictor) {}
  score(dataset: DatasetSample, dags: ArchDag[]): Float32Array {
    return this.scoreMean([dataset], dags);
  }
  scoreMean(datasets: DatasetSample[], dags: ArchDag[]): Float32Array {
    for (const d of datasets) checkDataset(d, this.predictor.featureDim, this.predictor.numSample);
    const X = datasetTensor(datasets);
    try {
      return this.predictor.scoreAll(X, dags);
    } finally {
      X.dispose();
    }
  }
}

/**
 * Several predictors as one ranker: each predictor's scores become accuracies with its own target statistics,
 * are averaged, and return on the first predictor's score scale (so scoreToAccuracy of the manifest still holds).
 */
export class EnsembleScorer implements CandidateScorer {
  constructor(private readonly members: ScaledPredictor[]) {
    if (members.length === 0) throw new InputError({ field: 'predictors' }, 'an ensemble needs at least one predictor');
  }
  score(dataset: DatasetSample, dags: ArchDag[]): Float32Array {
    return this.scoreMean([dataset], dags);
  }
  scoreMean(datasets: DatasetSample[], dags: ArchDag[]): Float32Array {
    for (const m of this.members) for (const d of datasets) checkDataset(d, m.predictor.featureDim, m.predictor.numSample);
    // one dataset tensor for all members
    const X = datasetTensor(datasets);
    const accuracy = new Float64Array(dags.length);
    try {
      for (const m of this.members) {
        const s = m.predictor.scoreAll(X, dags);
        for (let i = 0; i < s.length; i++) accuracy[i] += (s[i] * 100 * m.targetStd + m.targetMean) / this.members.length;
      }
    } finally {
      X.dispose();
    }
    const first = this.members[0];
    return Float32Array.from(accuracy, (a) => (a - first.targetMean) / first.targetStd / 100);
  }
}
