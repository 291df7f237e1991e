import crypto from 'node:crypto';
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, InputError, Rng, type ArchDag, type SearchSpace } from '@metad2a/core';
import { FeatureStore, normalizeAccuracy, readDatabase, splitRecords, targetStats, taskMeans, taskTargetStats, type MetaRecord, type TargetStats } from '@metad2a/data-pipeline';
import { packDatasets } from '@metad2a/set-encoder';
import type { MetaTrainConfig, SelectionConfig } from './config.js';

/** One training pair: a task (class subset of a source dataset) and an architecture, with its accuracy. */
export interface Example {
  record: MetaRecord;
  /** Line of the record in the database file (for messages). */
  line: number;
  dag: ArchDag;
  /** Predictor target ((acc - mean) / std) / 100 with train-split statistics (mean: overall or the task's, per targetNorm); 0 for the generator. */
  target: number;
}

export interface MetaData {
  space: SearchSpace;
  /** Records of the configured search space, in file order. */
  records: number;
  train: Example[];
  valid: Example[];
  /** Predictor only: train-split accuracy statistics used for the targets (targetNorm 'task': overall mean, pooled within-task std). */
  stats: TargetStats | null;
  stores: Map<string, FeatureStore>;
  featureDim: number;
  extractor: string;
  /** Identity of the inputs (database bytes, stores), so a resumed run refuses changed data. */
  fingerprint: string;
  warnings: string[];
}

/**
 * Generator pairs from the database: records grouped by task id and ranked by accuracy (ties keep
 * file order); rule 'best' keeps each task's best architecture, 'top-k' the best k, 'all' every
 * record; minAccuracy then drops pairs below it. Tasks come out in order of first appearance.
 */
export function selectGeneratorPairs<T extends { record: MetaRecord }>(items: readonly T[], selection: SelectionConfig): T[] {
  const byTask = new Map<string, T[]>();
  for (const it of items) {
    const list = byTask.get(it.record.taskId);
    if (list) list.push(it);
    else byTask.set(it.record.taskId, [it]);
  }
  const keep = selection.rule === 'best' ? 1 : selection.rule === 'top-k' ? selection.k : Infinity;
  const out: T[] = [];
  for (const list of byTask.values()) {
    // Array.prototype.sort is stable: equal accuracies keep file order.
    const ranked = [...list].sort((a, b) => b.record.accuracy - a.record.accuracy);
    for (const it of ranked.slice(0, keep)) if (selection.minAccuracy === null || it.record.accuracy >= selection.minAccuracy) out.push(it);
  }
  return out;
}

function fingerprintOf(database: string, stores: Map<string, FeatureStore>): string {
  const h = crypto.createHash('sha256');
  h.update(fs.readFileSync(database));
  for (const [name, s] of [...stores].sort(([a], [b]) => a.localeCompare(b))) h.update(`\0${name}\0${s.manifest.data}\0${s.extractor}\0${s.dims}`);
  return h.digest('hex');
}

/**
 * Load the database and feature stores named by the config and build the train/validation
 * examples. Every problem names the file and line (records) or the config key (stores).
 */
export async function loadMetaData(config: MetaTrainConfig, spaces: readonly SearchSpace<any>[], onWarning?: (m: string) => void): Promise<MetaData> {
  const space = spaces.find((s) => s.id === config.searchSpace);
  if (!space) throw new ConfigError('searchSpace', `unknown search space '${config.searchSpace}'`, `available: ${spaces.map((s) => s.id).join(', ')}`);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    onWarning?.(m);
  };
  const db = await readDatabase(config.database, {
    onWarning: warn,
    validateArch: (ss, arch) => {
      if (ss !== space.id) return null;
      try {
        const reason = space.invalidReason(space.toDag(space.parse(arch)));
        return reason ? `not a valid ${space.id} architecture: ${reason}` : null;
      } catch (e) {
        return (e as Error).message;
      }
    },
  });
  const picked: Array<{ record: MetaRecord; line: number }> = [];
  const otherSpaces = new Set<string>();
  db.records.forEach((r, i) => (r.searchSpace === space.id ? picked.push({ record: r, line: db.lines[i] }) : otherSpaces.add(r.searchSpace)));
  if (picked.length === 0) {
    throw new InputError({ file: config.database }, `no records of search space '${space.id}'`, otherSpaces.size ? `the file holds ${[...otherSpaces].join(', ')}: set searchSpace` : 'the database is empty');
  }
  if (otherSpaces.size) warn(`${config.database}: skipping records of search space(s) ${[...otherSpaces].join(', ')} (training on '${space.id}')`);

  // Feature stores: one per source dataset the records use.
  const stores = new Map<string, FeatureStore>();
  try {
    for (const { record, line } of picked) {
      const name = record.dataset;
      let store = stores.get(name);
      if (!store) {
        const p = config.features[name];
        if (!p) {
          throw new ConfigError('features', `no feature store for dataset '${name}' (used by ${config.database} line ${line})`, `add features.${name}: <store manifest> (given: ${Object.keys(config.features).join(', ')})`);
        }
        store = FeatureStore.open(p, { extractor: config.extractor });
        stores.set(name, store);
      }
      const bad = record.classes.find((c) => c >= store.classes.length);
      if (bad !== undefined) {
        throw new InputError({ file: config.database, line, field: 'classes' }, `class ${bad} is out of range for dataset '${name}' (its feature store ${store.manifestPath} has ${store.classes.length} classes)`);
      }
      const tooFew = record.classes.find((c) => store.counts[c] === 0);
      if (tooFew !== undefined) throw new InputError({ file: store.manifestPath, field: `counts[${tooFew}]` }, `class ${tooFew} has no features (needed by ${config.database} line ${line})`);
    }
    const [first, ...rest] = [...stores.values()];
    for (const s of rest) {
      if (s.extractor !== first.extractor || s.dims !== first.dims) {
        throw new ConfigError('features', `stores mix features: ${first.manifestPath} has '${first.extractor}' (${first.dims} dims), ${s.manifestPath} has '${s.extractor}' (${s.dims} dims)`, 'encode every dataset with the same extractor');
      }
    }
    const items = picked.map(({ record, line }) => ({ record, line, dag: space.toDag(space.parse(record.arch)), target: 0 }));
    const examples = config.model === 'generator' ? selectGeneratorPairs(items, config.selection) : items;
    if (examples.length === 0) throw new ConfigError('selection.minAccuracy', `no generator pairs left (minAccuracy ${config.selection.minAccuracy})`);
    const { train, valid } = split(examples, config);
    let stats: TargetStats | null = null;
    if (config.model === 'predictor') {
      if (config.targetNorm === 'global') {
        stats = targetStats(train.map((e) => e.record.accuracy));
        for (const e of [...train, ...valid]) e.target = normalizeAccuracy(e.record.accuracy, stats);
      } else {
        const ts = taskTargetStats(train.map((e) => e.record));
        // A validation task absent from training (splitBy 'task') is centred on its own records' mean.
        const validMeans = taskMeans(valid.map((e) => e.record));
        for (const e of [...train, ...valid]) e.target = (e.record.accuracy - (ts.taskMeans.get(e.record.taskId) ?? validMeans.get(e.record.taskId)!)) / ts.std / 100;
        stats = { mean: ts.mean, std: ts.std, n: ts.n };
      }
    }
    return { space, records: picked.length, train, valid, stats, stores, featureDim: first.dims, extractor: first.extractor, fingerprint: fingerprintOf(config.database, stores), warnings };
  } catch (e) {
    for (const s of stores.values()) s.close();
    throw e;
  }
}

/**
 * The original's split: a seeded permutation, validation = its first `valid` items (a count or
 * fraction). With splitBy 'task', whole tasks are permuted and `valid` counts tasks, so no task is
 * in both splits.
 */
function split(examples: Example[], config: MetaTrainConfig): { train: Example[]; valid: Example[] } {
  const hint = 'lower `valid` (a count, or a fraction such as 0.1)';
  if (config.splitBy === 'record') {
    if (config.valid >= 1 && config.valid >= examples.length) throw new ConfigError('valid', `${config.valid} validation records but only ${examples.length} examples`, hint);
    const { train, valid } = splitRecords(examples, { valid: config.valid, seed: config.seed });
    if (valid.length === 0) throw new ConfigError('valid', `a fraction ${config.valid} of ${examples.length} examples is no validation record`, hint);
    if (train.length === 0) throw new ConfigError('valid', `a fraction ${config.valid} of ${examples.length} examples leaves nothing to train on`, hint);
    return { train, valid };
  }
  const tasks = [...new Set(examples.map((e) => e.record.taskId))];
  if (config.valid >= 1 && config.valid >= tasks.length) throw new ConfigError('valid', `${config.valid} validation tasks but only ${tasks.length} tasks`, hint);
  const { valid: vt } = splitRecords(tasks, { valid: config.valid, seed: config.seed });
  if (vt.length === 0) throw new ConfigError('valid', `a fraction ${config.valid} of ${tasks.length} tasks is no validation task`, hint);
  const held = new Set(vt);
  if (held.size === tasks.length) throw new ConfigError('valid', `a fraction ${config.valid} of ${tasks.length} tasks leaves nothing to train on`, hint);
  return { train: examples.filter((e) => !held.has(e.record.taskId)), valid: examples.filter((e) => held.has(e.record.taskId)) };
}

/**
 * Draws features exactly like FeatureStore.sample (same rows for the same Rng state, numSample per
 * class without replacement, with replacement for classes with fewer rows) but serves classes from
 * memory once read, up to `budgetBytes`: a batch otherwise costs one read call per sampled row. The
 * draw does not depend on the cache, so runs with and without it are identical.
 */
export class FeatureSampler {
  private readonly cache = new Map<string, Float32Array>();
  private used = 0;

  constructor(
    readonly stores: Map<string, FeatureStore>,
    readonly budgetBytes: number,
  ) {}

  get cachedBytes(): number {
    return this.used;
  }

  private rowsOf(dataset: string, store: FeatureStore, c: number): Float32Array | null {
    const key = `${dataset}\0${c}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const bytes = store.counts[c] * store.dims * 4;
    if (this.used + bytes > this.budgetBytes) return null;
    const rows = store.readClass(c);
    this.cache.set(key, rows);
    this.used += bytes;
    return rows;
  }

  /** Class-major [classes.length * numSample, dims] features of one task. */
  sample(dataset: string, classes: readonly number[], rng: Rng, numSample: number): Float32Array {
    const store = this.stores.get(dataset);
    if (!store) throw new Error(`no feature store for dataset '${dataset}'`);
    const d = store.dims;
    const out = new Float32Array(classes.length * numSample * d);
    classes.forEach((c, k) => {
      const n = store.counts[c];
      // The same calls on rng as FeatureStore.sample, in the same order.
      const rows = n >= numSample ? rng.sampleWithoutReplacement(n, numSample) : Array.from({ length: numSample }, () => rng.int(n));
      const all = this.rowsOf(dataset, store, c);
      if (!all) {
        out.set(store.readRows(c, rows), k * numSample * d);
        return;
      }
      rows.forEach((r, j) => out.set(all.subarray(r * d, (r + 1) * d), (k * numSample + j) * d));
    });
    return out;
  }
}

/**
 * A batch as the models take it: features of every task drawn afresh (numSample per class,
 * class-major, zero-padded to the largest class count with classCounts) and the graphs.
 */
export function assembleBatch(
  examples: readonly Example[],
  sampler: FeatureSampler,
  rng: Rng,
  numSample: number,
  featureDim: number,
): { X: tf.Tensor3D; classCounts: number[] | undefined; dags: ArchDag[]; targets: number[] } {
  const sets = examples.map((e) => ({ features: sampler.sample(e.record.dataset, e.record.classes, rng, numSample), numClasses: e.record.classes.length }));
  const { X, classCounts } = packDatasets(sets, numSample, featureDim);
  const uniform = classCounts.every((c) => c === classCounts[0]);
  return { X, classCounts: uniform ? undefined : classCounts, dags: examples.map((e) => e.dag), targets: examples.map((e) => e.target) };
}
