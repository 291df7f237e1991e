import fs from 'node:fs';
import { parseStream } from 'fast-csv';
import { ConfigError, InputError } from '@metad2a/core';
import type { MetaRecord } from './database.js';

/** Datasets of the NB201 table whose images we can read (ImageNet16-120 has none here). */
export const NB201_IMPORTABLE = ['cifar10', 'cifar100'] as const;
export type Nb201ImportDataset = (typeof NB201_IMPORTABLE)[number];

const COLUMN: Record<Nb201ImportDataset, string> = {
  cifar10: 'CIFAR10TestAccuracy200Epochs',
  cifar100: 'CIFAR100TestAccuracy200Epochs',
};
const NUM_CLASSES: Record<Nb201ImportDataset, number> = { cifar10: 10, cifar100: 100 };

/** Recipe id of the imported numbers: NB201's 200-epoch schedule, test accuracy, mean over its seeds. */
export const NB201_RECIPE = 'nb201-200ep-test';

export interface ImportNb201Options {
  datasets?: readonly Nb201ImportDataset[];
  /** Time stamp written into the records (default: now). */
  time?: string;
}

const CELL = /^\|[a-z_0-9]+~0\|\+\|[a-z_0-9]+~0\|[a-z_0-9]+~1\|\+\|[a-z_0-9]+~0\|[a-z_0-9]+~1\|[a-z_0-9]+~2\|$/;

/**
 * The NAS-Bench-201 table (nats_bench.csv: CIFAR10/CIFAR100/ImageNet test accuracy after 200
 * epochs, ArchitectureString, UniqueString) as database records of whole-dataset tasks
 * ('cifar10-all' with classes 0..9, 'cifar100-all' with 0..99), search space 'nb201', seed null
 * (the table holds means over seeds). Use them as meta-test ground truth.
 */
export async function importNb201Table(file: string, options: ImportNb201Options = {}): Promise<MetaRecord[]> {
  const datasets = options.datasets ?? NB201_IMPORTABLE;
  for (const d of datasets) if (!(d in COLUMN)) throw new ConfigError('datasets', `'${d}'`, `one of ${NB201_IMPORTABLE.join(', ')} (datasets whose images are available)`);
  if (!fs.existsSync(file)) throw new InputError({ file }, 'NAS-Bench-201 table not found');
  const time = options.time ?? new Date().toISOString();
  const out: MetaRecord[] = [];
  let line = 0;
  let cols: Record<string, number> | null = null;
  await new Promise<void>((resolve, reject) => {
    const stream = fs.createReadStream(file);
    const parser = parseStream(stream, { headers: false, ignoreEmpty: true, trim: true });
    parser.on('error', (e: Error) => reject(new InputError({ file, line: line + 1 }, `CSV syntax error: ${e.message}`)));
    parser.on('data', (f: string[]) => {
      line++;
      try {
        if (!cols) {
          cols = Object.fromEntries(f.map((name, i) => [name, i]));
          for (const need of ['ArchitectureString', ...datasets.map((d) => COLUMN[d])]) {
            if (!(need in cols)) throw new InputError({ file, line, field: need }, 'missing column', 'expected the nats_bench.csv layout');
          }
          return;
        }
        const arch = f[cols.ArchitectureString];
        if (!CELL.test(arch)) throw new InputError({ file, line, field: 'ArchitectureString' }, `'${arch}' is not an NB201 cell string`);
        for (const d of datasets) {
          const acc = Number(f[cols[COLUMN[d]]]);
          if (!Number.isFinite(acc) || acc < 0 || acc > 100) throw new InputError({ file, line, field: COLUMN[d] }, `'${f[cols[COLUMN[d]]]}' is not an accuracy in percent`);
          out.push({
            taskId: `${d}-all`,
            dataset: d,
            classes: Array.from({ length: NUM_CLASSES[d] }, (_, i) => i),
            searchSpace: 'nb201',
            arch,
            accuracy: acc,
            recipe: NB201_RECIPE,
            seed: null,
            time,
          });
        }
      } catch (e) {
        stream.destroy();
        reject(e);
      }
    });
    parser.on('end', () => resolve());
  });
  return out;
}
