// The only place data-pipeline touches a search space: the benchmark table's loader and cell
// strings come from @metad2a/search-space-201 so there is one parser of nats_bench.csv.
import { ConfigError } from '@metad2a/core';
import { loadNb201Table, type Nb201Table } from '@metad2a/search-space-201';
import type { MetaRecord } from './database.js';

/** Datasets of the NB201 table whose images we can read (ImageNet16-120 has none here). */
export const NB201_IMPORTABLE = ['cifar10', 'cifar100'] as const;
export type Nb201ImportDataset = (typeof NB201_IMPORTABLE)[number];

const NUM_CLASSES: Record<Nb201ImportDataset, number> = { cifar10: 10, cifar100: 100 };

/** Recipe id of the imported numbers: NB201's 200-epoch schedule, test accuracy, mean over its seeds. */
export const NB201_RECIPE = 'nb201-200ep-test';

export interface ImportNb201Options {
  datasets?: readonly Nb201ImportDataset[];
  /** Time stamp written into the records (default: now). */
  time?: string;
}

/**
 * The NAS-Bench-201 table (nats_bench.csv, 200-epoch test accuracy) as database records of
 * whole-dataset tasks: 'cifar10-all' with classes 0..9 and 'cifar100-all' with 0..99, search space
 * 'nb201', recipe NB201_RECIPE, seed null (the table holds means over seeds), in the table's
 * official index order. Use them as meta-test ground truth.
 * `table`: a loaded table, a path to nats_bench.csv, or undefined for the default location.
 */
export async function importNb201Table(table?: Nb201Table | string, options: ImportNb201Options = {}): Promise<MetaRecord[]> {
  const datasets = options.datasets ?? NB201_IMPORTABLE;
  for (const d of datasets) {
    if (!(NB201_IMPORTABLE as readonly string[]).includes(d)) throw new ConfigError('datasets', `'${d}'`, `one of ${NB201_IMPORTABLE.join(', ')} (datasets whose images are available)`);
  }
  const t = typeof table === 'object' ? table : await loadNb201Table(table, { epoch12Path: null });
  const time = options.time ?? new Date().toISOString();
  const out: MetaRecord[] = [];
  for (const d of datasets) {
    const col = t.column({ dataset: d, split: 'test', epochs: 200 });
    const classes = Array.from({ length: NUM_CLASSES[d] }, (_, i) => i);
    for (let i = 0; i < t.size; i++) {
      out.push({ taskId: `${d}-all`, dataset: d, classes: [...classes], searchSpace: 'nb201', arch: t.strings[i], accuracy: col[i], recipe: NB201_RECIPE, seed: null, time });
    }
  }
  return out;
}
