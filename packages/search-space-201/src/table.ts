import fs from 'node:fs';
import path from 'node:path';
import { parseFile } from 'fast-csv';
import { ConfigError, InputError, repoRootOf } from '@metad2a/core';

// Kept in this package's API: callers and tests locate the repository through it.
export { findRepoRoot } from '@metad2a/core';
import { formatNb201, parseNb201, type Nb201Arch } from './ops.js';

export const NB201_DATASETS = ['cifar10', 'cifar100', 'ImageNet16-120'] as const;
export type Nb201Dataset = (typeof NB201_DATASETS)[number];
export type Nb201Split = 'test' | 'valid';
export type Nb201Epochs = 200 | 12;

/**
 * Which number to read. Both tables follow NATS-Bench: for cifar10 'test' is the CIFAR-10 test set
 * of the model trained on train+valid and 'valid' the cifar10-valid x-valid; for cifar100 and
 * ImageNet16-120 'test'/'valid' are the x-test/x-valid halves of the test set. 200 epochs has
 * test only; 12 epochs (the short schedule) has both.
 */
export interface Nb201Query {
  dataset: Nb201Dataset;
  split: Nb201Split;
  epochs: Nb201Epochs;
}

export interface Nb201Entry {
  /** Official NB201 / NATS-Bench topology index (row order of the table). */
  index: number;
  str: string;
  arch: Nb201Arch;
  accuracy: number;
}

/** The environment variable overriding the default path of nats_bench.csv. */
export const NB201_TABLE_ENV = 'METAD2A_NB201_TABLE';
export const NB201_12EPOCH_FILE = 'nb201_12epoch_valid_test.csv';

const MAIN_COLUMNS = [
  'CIFAR10TestAccuracy200Epochs',
  'CIFAR100TestAccuracy200Epochs',
  'ImageNetTestAccuracy200Epochs',
  'ArchitectureString',
  'UniqueString',
] as const;
const MAIN_ACC: Array<[string, Nb201Dataset]> = [
  ['CIFAR10TestAccuracy200Epochs', 'cifar10'],
  ['CIFAR100TestAccuracy200Epochs', 'cifar100'],
  ['ImageNetTestAccuracy200Epochs', 'ImageNet16-120'],
];
const E12_COLUMNS = ['arch', 'cellstr', 'cifar10-test', 'cifar10-val', 'cifar100-test', 'cifar100-val', 'imagenet-test', 'imagenet-val'] as const;
const E12_ACC: Array<[string, Nb201Dataset, Nb201Split]> = [
  ['cifar10-test', 'cifar10', 'test'],
  ['cifar10-val', 'cifar10', 'valid'],
  ['cifar100-test', 'cifar100', 'test'],
  ['cifar100-val', 'cifar100', 'valid'],
  ['imagenet-test', 'ImageNet16-120', 'test'],
  ['imagenet-val', 'ImageNet16-120', 'valid'],
];

const queryKey = (q: Nb201Query) => `${q.dataset}/${q.split}/${q.epochs}`;

/** The benchmark table: every cell's official index, strings and accuracies, with typed look-ups. */
export class Nb201Table {
  private readonly byString: Map<string, number>;

  constructor(
    /** NB201 strings in official index order. */
    readonly strings: readonly string[],
    /** NATS-Bench `UniqueString` per index. */
    readonly uniqueStrings: readonly string[],
    private readonly columns: ReadonlyMap<string, Float64Array>,
    /** Files the table was read from. */
    readonly sources: { main: string; epoch12: string | null },
  ) {
    this.byString = new Map(strings.map((s, i) => [s, i]));
  }

  get size(): number {
    return this.strings.length;
  }

  /** The queries this table can answer. */
  available(): Nb201Query[] {
    return [...this.columns.keys()].map((k) => {
      const [dataset, split, epochs] = k.split('/');
      return { dataset: dataset as Nb201Dataset, split: split as Nb201Split, epochs: Number(epochs) as Nb201Epochs };
    });
  }

  has(arch: Nb201Arch | string): boolean {
    const s = typeof arch === 'string' ? arch : formatNb201(arch);
    return this.byString.has(s);
  }

  /** Official index of a cell (an arch or its string); throws when the cell is not in the table. */
  indexOf(arch: Nb201Arch | string): number {
    if (typeof arch === 'string') {
      const direct = this.byString.get(arch);
      if (direct !== undefined) return direct;
      arch = parseNb201(arch); // a malformed string gets a precise parse error
    }
    const s = formatNb201(arch);
    const i = this.byString.get(s);
    if (i === undefined) throw new RangeError(`cell ${s} is not in the table ${this.sources.main} (${this.size} rows)`);
    return i;
  }

  stringAt(index: number): string {
    this.checkIndex(index);
    return this.strings[index];
  }

  archAt(index: number): Nb201Arch {
    return parseNb201(this.stringAt(index));
  }

  uniqueStringAt(index: number): string {
    this.checkIndex(index);
    return this.uniqueStrings[index];
  }

  /** All values of one query in index order (a view: do not modify). */
  column(query: Nb201Query): Float64Array {
    const q = normalizeQuery(query);
    const col = this.columns.get(queryKey(q));
    if (!col) {
      const why =
        q.epochs === 200 && q.split === 'valid'
          ? '200-epoch validation accuracies are not in the compact NATS export'
          : q.epochs === 12
            ? `no 12-epoch table loaded (expected ${NB201_12EPOCH_FILE} beside the main table, or options.epoch12Path)`
            : 'not in the loaded files';
      throw new ConfigError('query', `no ${q.dataset} ${q.split} accuracy at ${q.epochs} epochs: ${why}`, `available: ${this.available().map(queryKey).join(', ')}`);
    }
    return col;
  }

  /** Accuracy in percent of a cell given by arch, string or official index. */
  accuracy(cell: Nb201Arch | string | number, query: Nb201Query): number {
    const i = typeof cell === 'number' ? (this.checkIndex(cell), cell) : this.indexOf(cell);
    return this.column(query)[i];
  }

  /** The k most accurate cells, best first; ties keep index order. */
  topK(k: number, query: Nb201Query): Nb201Entry[] {
    const col = this.column(query);
    if (!Number.isInteger(k) || k < 0) throw new ConfigError('k', `must be a non-negative integer, got ${k}`);
    const order = Array.from(col.keys()).sort((a, b) => col[b] - col[a] || a - b);
    return order.slice(0, k).map((i) => ({ index: i, str: this.strings[i], arch: parseNb201(this.strings[i]), accuracy: col[i] }));
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) throw new RangeError(`index ${index} is outside 0..${this.size - 1}`);
  }
}

function normalizeQuery(q: Nb201Query): Nb201Query {
  if (!q || typeof q !== 'object') throw new ConfigError('query', 'expected {dataset, split, epochs}');
  const dataset = normalizeDataset(q.dataset);
  if (q.split !== 'test' && q.split !== 'valid') throw new ConfigError('split', `unknown split '${String(q.split)}'`, "use 'test' or 'valid'");
  if (q.epochs !== 200 && q.epochs !== 12) throw new ConfigError('epochs', `no table for ${String(q.epochs)} epochs`, 'use 200 or 12');
  return { dataset, split: q.split, epochs: q.epochs };
}

/** Accepts the NB201 names and a few spellings of ImageNet16-120. */
export function normalizeDataset(name: string): Nb201Dataset {
  const n = String(name).toLowerCase();
  if (n === 'cifar10' || n === 'cifar-10') return 'cifar10';
  if (n === 'cifar100' || n === 'cifar-100') return 'cifar100';
  if (n === 'imagenet16-120' || n === 'imagenet16' || n === 'imagenet') return 'ImageNet16-120';
  throw new ConfigError('dataset', `unknown NB201 dataset '${name}'`, `use one of ${NB201_DATASETS.join(', ')}`);
}

/** $METAD2A_NB201_TABLE, else <repo root>/../shared/data/nb201/nats_bench.csv. */
export function defaultNb201TablePath(): string {
  const env = process.env[NB201_TABLE_ENV];
  if (env) return path.resolve(env);
  const root = repoRootOf(import.meta.url);
  if (!root) throw new ConfigError(NB201_TABLE_ENV, `no repository root (a folder with nx.json) above this package or ${process.cwd()}`, 'set it to the path of nats_bench.csv');
  return path.resolve(root, '..', 'shared', 'data', 'nb201', 'nats_bench.csv');
}

export interface LoadNb201Options {
  /** The 12-epoch file; default: nb201_12epoch_valid_test.csv beside the main table if it exists; null: skip it. */
  epoch12Path?: string | null;
}

/** Rows of a headed CSV with the location of every field, header checked by name. */
async function readCsv(file: string, expected: readonly string[], onRow: (fields: string[], line: number, col: (name: string) => number) => void): Promise<number> {
  if (!fs.existsSync(file)) throw new InputError({ file }, 'file not found', `set ${NB201_TABLE_ENV} or pass a path`);
  let header: string[] | null = null as string[] | null;
  let line = 0;
  const index = new Map<string, number>();
  const col = (name: string) => index.get(name)!;
  try {
    for await (const fields of parseFile<string[], string[]>(file, { headers: false, ignoreEmpty: false })) {
      line++;
      // One record per line holds for these files; a field with a newline would make line numbers lie.
      fields.forEach((f: string, i: number) => {
        if (f.includes('\n')) throw new InputError({ file, line, column: i + 1 }, 'field spans several lines');
      });
      if (!header) {
        const names = fields.map((f: string) => f.trim().replace(/^\uFEFF/, ''));
        names.forEach((h: string, i: number) => index.set(h, i));
        header = names;
        for (const name of expected) {
          if (!index.has(name)) throw new InputError({ file, line, column: name }, `missing column '${name}'`, `the header must contain ${expected.join(',')}`);
        }
        continue;
      }
      if (fields.length !== header.length) {
        throw new InputError({ file, line, column: Math.min(fields.length, header.length) + 1 }, `expected ${header.length} fields, found ${fields.length}`);
      }
      onRow(fields, line, col);
    }
  } catch (e) {
    if (e instanceof InputError || e instanceof ConfigError) throw e;
    throw new InputError({ file, line: line + 1 }, `unreadable CSV: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (!header) throw new InputError({ file, line: 1 }, 'empty file, expected a header line');
  return line - 1;
}

function percent(file: string, line: number, columnNo: number, name: string, text: string): number {
  const v = text.trim() === '' ? NaN : Number(text);
  if (!Number.isFinite(v) || v < 0 || v > 100) {
    throw new InputError({ file, line, column: `${columnNo} (${name})` }, `'${text}' is not an accuracy in percent (0..100)`);
  }
  return v;
}

/**
 * Load nats_bench.csv (200-epoch test accuracies, UniqueString) and, if present, the 12-epoch
 * valid/test file, into one typed table. The 12-epoch rows must name the same cells in the same
 * order. Every malformed field is reported with file, line and column.
 */
export async function loadNb201Table(file?: string, options: LoadNb201Options = {}): Promise<Nb201Table> {
  const main = path.resolve(file ?? defaultNb201TablePath());
  const strings: string[] = [];
  const uniques: string[] = [];
  const acc200 = MAIN_ACC.map(() => [] as number[]);
  const seen = new Map<string, number>();
  await readCsv(main, MAIN_COLUMNS, (f, line, col) => {
    const ci = col('ArchitectureString');
    const raw = f[ci].trim();
    const where = { file: main, line, column: `${ci + 1} (ArchitectureString)` };
    const s = formatNb201(parseNb201(raw, where)); // unknown ops and bad syntax fail here with the location
    const prev = seen.get(s);
    if (prev !== undefined) throw new InputError(where, `cell ${s} repeats line ${prev}`);
    seen.set(s, line);
    strings.push(s);
    uniques.push(f[col('UniqueString')].trim());
    MAIN_ACC.forEach(([name], k) => acc200[k].push(percent(main, line, col(name) + 1, name, f[col(name)])));
  });
  const columns = new Map<string, Float64Array>();
  MAIN_ACC.forEach(([, ds], k) => columns.set(queryKey({ dataset: ds, split: 'test', epochs: 200 }), Float64Array.from(acc200[k])));

  let e12: string | null = null;
  if (options.epoch12Path !== null) {
    const candidate = options.epoch12Path ?? path.join(path.dirname(main), NB201_12EPOCH_FILE);
    if (options.epoch12Path !== undefined || fs.existsSync(candidate)) e12 = path.resolve(candidate);
  }
  if (e12) {
    const file12 = e12;
    const cols12 = E12_ACC.map(() => new Float64Array(strings.length));
    let row = 0;
    const n = await readCsv(file12, E12_COLUMNS, (f, line, col) => {
      const ai = col('arch');
      if (f[ai].trim() !== String(row)) throw new InputError({ file: file12, line, column: `${ai + 1} (arch)` }, `index '${f[ai]}' where ${row} was expected (rows must be in official index order)`);
      const ci = col('cellstr');
      const where = { file: file12, line, column: `${ci + 1} (cellstr)` };
      const s = formatNb201(parseNb201(f[ci].trim(), where));
      if (row >= strings.length) throw new InputError(where, `more rows than the ${strings.length} of ${main}`);
      if (s !== strings[row]) throw new InputError(where, `cell ${s} differs from index ${row} of ${main} (${strings[row]})`);
      E12_ACC.forEach(([name], k) => (cols12[k][row] = percent(file12, line, col(name) + 1, name, f[col(name)])));
      row++;
    });
    if (n !== strings.length) throw new InputError({ file: file12, line: n + 2 }, `${n} rows, but ${main} has ${strings.length}`);
    E12_ACC.forEach(([, ds, split], k) => columns.set(queryKey({ dataset: ds, split, epochs: 12 }), cols12[k]));
  }
  return new Nb201Table(strings, uniques, columns, { main, epoch12: e12 });
}
