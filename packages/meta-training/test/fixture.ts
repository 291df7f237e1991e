import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MetaDatabaseWriter, openCifarBinary, sampleTasks, writeFeatureStore, type MetaRecord } from '@metad2a/data-pipeline';

const here = path.dirname(fileURLToPath(import.meta.url));
/** ../shared/data from the repository root. */
export const SHARED_DATA = path.resolve(here, '../../../../shared/data');
const CIFAR_SUBSET = path.join(SHARED_DATA, 'cifar10-subset', 'train_100per_class.bin');
const NB201_12EP = path.join(SHARED_DATA, 'nb201', 'nb201_12epoch_valid_test.csv');

export const PIXEL_EXTRACTOR = 'pixels-4x4';
export const FEATURE_DIM = 48;

/**
 * Real, deterministic features of real images: each 32x32 CIFAR-10 image average-pooled to 4x4 per
 * RGB channel (48 values in [0, 1]); 100 images per class from the shared CIFAR-10 subset.
 */
export async function writePixelStore(file: string): Promise<void> {
  const ds = openCifarBinary([CIFAR_SUBSET], { variant: 'cifar10' });
  try {
    const byClass: number[][] = ds.classes.map(() => []);
    ds.labels.forEach((l, i) => byClass[l].push(i));
    const rows: Uint8Array[] = [];
    for (const idx of byClass) {
      const images = await ds.read(idx);
      const out = new Float32Array(idx.length * FEATURE_DIM);
      images.forEach((img, r) => {
        for (let y = 0; y < 32; y++)
          for (let x = 0; x < 32; x++)
            for (let c = 0; c < 3; c++) out[r * FEATURE_DIM + ((y >> 3) * 4 + (x >> 3)) * 3 + c] += img.data[(y * 32 + x) * 3 + c] / (255 * 64);
      });
      rows.push(new Uint8Array(out.buffer));
    }
    writeFeatureStore(file, {
      extractor: PIXEL_EXTRACTOR,
      inputSize: 4,
      dims: FEATURE_DIM,
      classes: ds.classes,
      rows,
      counts: byClass.map((x) => x.length),
      indices: byClass,
      source: { kind: 'cifar10', name: 'cifar10', files: [CIFAR_SUBSET], records: ds.size, selection: { perClass: null, seed: 0 } },
    });
  } finally {
    ds.close();
  }
}

/** The first `n` NB201 cells of the 12-epoch table with their CIFAR-10 validation accuracy (tests only). */
export function nb201Archs(n: number): Array<{ arch: string; accuracy: number }> {
  const lines = fs.readFileSync(NB201_12EP, 'utf8').split('\n');
  const header = lines[0].split(',');
  const col = header.indexOf('cifar10-val');
  const archCol = header.indexOf('cellstr');
  return lines.slice(1, n + 1).map((l) => {
    const f = l.split(',');
    return { arch: f[archCol], accuracy: Number(f[col]) };
  });
}

export interface Fixture {
  dir: string;
  database: string;
  store: string;
  records: MetaRecord[];
}

/**
 * A tiny meta-training set: 16 tasks (class subsets of CIFAR-10, 3 or 4 classes, so batches mix
 * class counts) x 4 NB201 cells each (40 distinct cells), accuracies from the 12-epoch table.
 */
export async function buildFixture(prefix = 'metad2a-mt-'): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const store = path.join(dir, 'cifar10-pixels.json');
  await writePixelStore(store);
  const tasks = [
    ...sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 8, classesPerTask: 3, seed: 1, idPrefix: 'c3' }),
    ...sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 8, classesPerTask: 4, seed: 2, idPrefix: 'c4' }),
  ];
  const archs = nb201Archs(40);
  const records: MetaRecord[] = [];
  tasks.forEach((t, k) => {
    for (let j = 0; j < 4; j++) {
      const a = archs[(k * 4 + j) % archs.length];
      records.push({ taskId: t.id, dataset: 'cifar10', classes: t.classes, searchSpace: 'nb201', arch: a.arch, accuracy: a.accuracy, recipe: 'nb201-12ep-table', seed: null, time: '2026-11-29T00:00:00Z' });
    }
  });
  const database = path.join(dir, 'db.csv');
  const w = await MetaDatabaseWriter.open(database);
  await w.append(records);
  w.close();
  return { dir, database, store, records };
}

/** Small model sizes so a test epoch takes a fraction of a second. */
export function smallConfig(model: 'generator' | 'predictor', fx: Fixture, out: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model,
    database: fx.database,
    features: { cifar10: fx.store },
    out,
    hs: model === 'generator' ? 16 : 32,
    nz: 16,
    numSample: 5,
    batchSize: 8,
    valid: 0.25,
    epochs: 4,
    lr: 3e-3,
    checkpointEvery: 2,
    ...extra,
  };
}
