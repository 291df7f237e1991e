import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ConfigError, InputError } from '@metad2a/core';

export type ModelKind = 'generator' | 'predictor';
export type Correlation = 'pearson' | 'spearman' | 'kendall';

export interface SchedulerConfig {
  factor: number;
  patience: number;
  threshold: number;
  thresholdMode: 'rel' | 'abs';
  cooldown: number;
  minLr: number;
  eps: number;
}

/**
 * Which (task, architecture) pairs teach the generator. Records are grouped by task id; within a
 * task they are ranked by accuracy (ties: file order). 'best' keeps the top one (default), 'top-k'
 * the best k, 'all' every record; `minAccuracy` then drops pairs below that accuracy (percent).
 */
export interface SelectionConfig {
  rule: 'best' | 'top-k' | 'all';
  k: number;
  minAccuracy: number | null;
}

export interface MetaTrainConfig {
  model: ModelKind;
  /** Meta-training database (CSV or JSONL of data-pipeline). */
  database: string;
  /** Feature store (manifest path) of each source dataset named by the records. */
  features: Record<string, string>;
  /** Extractor id the stores must carry; '*' accepts any, but all stores must then agree. */
  extractor: string;
  /** Search space id of the records to train on (others are skipped). */
  searchSpace: string;
  /** Run directory: config, checkpoints, JSONL log. */
  out: string;
  seed: number;
  epochs: number;
  batchSize: number;
  numSample: number;
  lr: number;
  scheduler: SchedulerConfig;
  /** KL weight of the generator loss. */
  beta: number;
  hs: number;
  nz: number;
  numHeads: number;
  /** Keep ckpt_<epoch> every this many epochs (the original's --save-epoch). */
  checkpointEvery: number;
  /** Overwrite the resume checkpoint `last` every this many epochs. */
  lastEvery: number;
  /** Validation size: a record count, or a fraction in (0, 1). */
  valid: number;
  /** Split unit: single records (the original) or whole tasks (no task in both splits). */
  splitBy: 'record' | 'task';
  /** Correlation that picks the best predictor checkpoint (the original: Pearson). */
  selectBy: Correlation;
  /**
   * Predictor targets: 'global' (the original) standardises accuracies with the training split's mean
   * and std; 'task' subtracts each task's mean and divides by the pooled within-task std, so the loss
   * is about ranking architectures within a task, not about how hard the task is.
   */
  targetNorm: 'global' | 'task';
  selection: SelectionConfig;
  /** Memory for feature-store classes kept after their first read (MiB); 0 reads every row from disk. */
  featureCacheMB: number;
}

/** The original's hyperparameters (spec section 4.3); hs depends on the model (56 generator, 512 predictor). */
export const DEFAULTS = {
  extractor: '*',
  searchSpace: 'nb201',
  seed: 333,
  epochs: 400,
  batchSize: 32,
  numSample: 20,
  lr: 1e-4,
  scheduler: { factor: 0.1, patience: 10, threshold: 1e-4, thresholdMode: 'rel', cooldown: 0, minLr: 0, eps: 1e-8 } as SchedulerConfig,
  beta: 0.005,
  nz: 56,
  numHeads: 4,
  checkpointEvery: 20,
  lastEvery: 1,
  valid: 400,
  splitBy: 'record' as const,
  selectBy: 'pearson' as const,
  targetNorm: 'global' as const,
  selection: { rule: 'best', k: 1, minAccuracy: null } as SelectionConfig,
  featureCacheMB: 1024,
};
export const DEFAULT_HS: Record<ModelKind, number> = { generator: 56, predictor: 512 };

type Check = (v: unknown) => string | null;

const posInt: Check = (v) => (Number.isInteger(v) && (v as number) > 0 ? null : 'a positive integer');
const nonNegInt: Check = (v) => (Number.isInteger(v) && (v as number) >= 0 ? null : 'a non-negative integer');
const posNum: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? null : 'a positive number');
const nonNegNum: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : 'a non-negative number');
const str: Check = (v) => (typeof v === 'string' && v !== '' ? null : 'a non-empty string');
const oneOf =
  (...xs: string[]): Check =>
  (v) =>
    typeof v === 'string' && xs.includes(v) ? null : `one of ${xs.map((x) => `'${x}'`).join(', ')}`;
const seedCheck: Check = (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff ? null : 'an integer in 0..4294967295');
const featuresCheck: Check = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0 && Object.values(v).every((p) => typeof p === 'string' && p !== '')
    ? null
    : 'a map of dataset name -> feature store path (at least one)';
const validCheck: Check = (v) =>
  typeof v === 'number' && ((Number.isInteger(v) && v >= 1) || (v > 0 && v < 1)) ? null : 'a record count >= 1 or a fraction in (0, 1)';

const SCHEMA: Record<string, Check | Record<string, Check>> = {
  model: oneOf('generator', 'predictor'),
  database: str,
  features: featuresCheck,
  extractor: str,
  searchSpace: str,
  out: str,
  seed: seedCheck,
  epochs: posInt,
  batchSize: posInt,
  numSample: posInt,
  lr: posNum,
  scheduler: {
    factor: (v) => (typeof v === 'number' && v > 0 && v < 1 ? null : 'a number in (0, 1)'),
    patience: nonNegInt,
    threshold: nonNegNum,
    thresholdMode: oneOf('rel', 'abs'),
    cooldown: nonNegInt,
    minLr: nonNegNum,
    eps: nonNegNum,
  },
  beta: nonNegNum,
  hs: posInt,
  nz: posInt,
  numHeads: posInt,
  checkpointEvery: posInt,
  lastEvery: posInt,
  valid: validCheck,
  splitBy: oneOf('record', 'task'),
  selectBy: oneOf('pearson', 'spearman', 'kendall'),
  targetNorm: oneOf('global', 'task'),
  featureCacheMB: nonNegNum,
  selection: {
    rule: oneOf('best', 'top-k', 'all'),
    k: posInt,
    minAccuracy: (v) => (v === null || (typeof v === 'number' && v >= 0 && v <= 100) ? null : 'null or a percentage in 0..100'),
  },
};

/** Keys whose values are paths: relative ones are resolved against the config file's folder. */
const PATH_KEYS = ['database', 'out'] as const;

/** 'batch-size' and 'batch_size' are accepted for 'batchSize' (the original's flags use both). */
export function camelKey(k: string): string {
  return k.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function closest(key: string, candidates: string[]): string | null {
  const lev = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
    return d[a.length][b.length];
  };
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = lev(key, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== null && bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** A layer of configuration: where it came from (for messages) and its values. */
export interface ConfigLayer {
  source: string;
  values: Record<string, unknown>;
}

/**
 * Check one layer: unknown keys and wrong types are ConfigErrors naming the key (dotted for nested
 * keys) and the source. Returns the layer with camelCase keys.
 */
export function validateLayer(layer: ConfigLayer): Record<string, unknown> {
  const walk = (obj: unknown, schema: Record<string, Check | Record<string, Check>>, prefix: string): Record<string, unknown> => {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new ConfigError(prefix.replace(/\.$/, '') || '(root)', `expected a mapping of keys to values in ${layer.source}, got ${describe(obj)}`);
    }
    const out: Record<string, unknown> = {};
    for (const [rawKey, v] of Object.entries(obj)) {
      const key = camelKey(rawKey);
      const name = `${prefix}${key}`;
      const check = schema[key];
      if (!check) {
        const guess = closest(key, Object.keys(schema));
        throw new ConfigError(name, `unknown key in ${layer.source}`, guess ? `did you mean '${prefix}${guess}'?` : `known keys: ${Object.keys(schema).join(', ')}`);
      }
      if (v === undefined) continue;
      if (typeof check === 'function') {
        const want = check(v);
        if (want) throw new ConfigError(name, `expected ${want}, got ${describe(v)} (in ${layer.source})`);
        out[key] = v;
      } else {
        out[key] = walk(v, check, `${name}.`);
      }
    }
    return out;
  };
  return walk(layer.values, SCHEMA, '');
}

/** Read a YAML or JSON config file; relative paths inside it are taken relative to the file. */
export function loadConfigFile(file: string): ConfigLayer {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError({ file }, `cannot read config file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const before = text.slice(0, err.pos[0]);
    const line = before.split('\n').length;
    const column = err.pos[0] - before.lastIndexOf('\n');
    throw new InputError({ file, line, column }, `not valid YAML/JSON: ${err.message.split('\n')[0]}`);
  }
  const values = doc.toJS() as unknown;
  if (values === null || values === undefined) return { source: file, values: {} };
  if (typeof values !== 'object' || Array.isArray(values)) throw new InputError({ file }, `the config must be a mapping of keys to values, not ${describe(values)}`);
  const layer: ConfigLayer = { source: file, values: values as Record<string, unknown> };
  const checked = validateLayer(layer);
  const dir = path.dirname(path.resolve(file));
  for (const k of PATH_KEYS) if (typeof checked[k] === 'string') checked[k] = path.resolve(dir, checked[k] as string);
  if (checked.features) {
    checked.features = Object.fromEntries(Object.entries(checked.features as Record<string, string>).map(([name, p]) => [name, path.resolve(dir, p)]));
  }
  return { source: file, values: checked };
}

/**
 * Merge layers (later wins; nested scheduler/selection/features merge key by key), apply the
 * original's defaults, and check what no single layer can: required keys and cross-field rules.
 */
export function resolveConfig(layers: readonly ConfigLayer[]): MetaTrainConfig {
  const merged: Record<string, unknown> = {};
  for (const layer of layers) {
    const v = validateLayer(layer);
    for (const [k, val] of Object.entries(v)) {
      const prev = merged[k];
      merged[k] = prev && typeof prev === 'object' && !Array.isArray(prev) && val && typeof val === 'object' ? { ...prev, ...val } : val;
    }
  }
  for (const k of ['model', 'database', 'features', 'out'] as const) {
    if (merged[k] === undefined) throw new ConfigError(k, 'required but not given', `set '${k}' in the config file or pass --${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  const model = merged.model as ModelKind;
  const cfg: MetaTrainConfig = {
    ...DEFAULTS,
    // the generator needs hs == nz: with only nz given, hs follows it
    hs: model === 'generator' && typeof merged.nz === 'number' ? merged.nz : DEFAULT_HS[model],
    ...(merged as Partial<MetaTrainConfig>),
    scheduler: { ...DEFAULTS.scheduler, ...((merged.scheduler as Partial<SchedulerConfig>) ?? {}) },
    selection: { ...DEFAULTS.selection, ...((merged.selection as Partial<SelectionConfig>) ?? {}) },
  } as MetaTrainConfig;
  if (model === 'generator' && cfg.hs !== cfg.nz) {
    throw new ConfigError('hs', `the generator needs hs == nz (got hs ${cfg.hs}, nz ${cfg.nz})`, 'the dataset embedding (nz) feeds fc1/fc2, which take hs inputs, as in the original');
  }
  if (cfg.nz % cfg.numHeads !== 0) throw new ConfigError('numHeads', `nz ${cfg.nz} is not divisible by ${cfg.numHeads} heads`);
  return cfg;
}

/**
 * `--set key=value` overrides (repeatable) into a config layer: dotted keys reach nested options
 * (`scheduler.patience=5`), values are read as YAML scalars (`1e-4`, `true`, `null`, `abc`).
 */
export function parseSetOverrides(items: readonly string[], source = '--set'): ConfigLayer {
  const values: Record<string, unknown> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(source, `'${item}' is not key=value`, 'e.g. --set scheduler.patience=5');
    const keys = item.slice(0, eq).split('.').map((k) => k.trim());
    if (keys.some((k) => !k)) throw new ConfigError(source, `'${item}' has an empty key`);
    let value: unknown;
    try {
      value = YAML.parse(item.slice(eq + 1));
    } catch {
      value = item.slice(eq + 1);
    }
    let node = values;
    keys.slice(0, -1).forEach((k) => {
      const next = node[k];
      node = (next && typeof next === 'object' ? next : (node[k] = {})) as Record<string, unknown>;
    });
    node[keys[keys.length - 1]] = value;
  }
  return { source, values };
}

/** The keys a resumed run may change (training longer); anything else must match the stored run. */
export const RESUMABLE_CHANGES: ReadonlyArray<keyof MetaTrainConfig> = ['epochs', 'out', 'featureCacheMB'];

/** First key (dotted) whose value differs between two configs, ignoring `ignore`. */
export function firstDifference(a: MetaTrainConfig, b: MetaTrainConfig, ignore: readonly string[] = []): string | null {
  const walk = (x: unknown, y: unknown, prefix: string): string | null => {
    if (x !== null && y !== null && typeof x === 'object' && typeof y === 'object') {
      const keys = new Set([...Object.keys(x as object), ...Object.keys(y as object)]);
      for (const k of [...keys].sort()) {
        const name = `${prefix}${k}`;
        if (ignore.includes(name)) continue;
        const d = walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], `${name}.`);
        if (d !== null) return d.endsWith('.') ? d.slice(0, -1) : d;
      }
      return null;
    }
    return Object.is(x, y) ? null : prefix;
  };
  const d = walk(a, b, '');
  return d === null ? null : d.replace(/\.$/, '');
}
