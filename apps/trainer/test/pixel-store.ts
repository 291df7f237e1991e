import path from 'node:path';
import { openCifarBinary, writeFeatureStore } from '@metad2a/data-pipeline';

/**
 * Real features, small: the CIFAR-10 subset's training images average-pooled to 4x4 RGB (48 features,
 * 100 per class), written as a feature store with extractor id 'pixels-4x4'. Shared by the trainer's tests.
 */
export async function writePixelStore(store: string, shared: string): Promise<void> {
  const bin = path.join(shared, 'cifar10-subset', 'train_100per_class.bin');
  const ds = openCifarBinary([bin], { variant: 'cifar10' });
  const byClass: number[][] = ds.classes.map(() => []);
  ds.labels.forEach((l, i) => byClass[l].push(i));
  const rows: Uint8Array[] = [];
  for (const idx of byClass) {
    const out = new Float32Array(idx.length * 48);
    (await ds.read(idx)).forEach((img, r) => {
      for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) out[r * 48 + (((p >> 8) << 2) + ((p & 31) >> 3)) * 3 + c] += img.data[p * 3 + c] / (255 * 64);
    });
    rows.push(new Uint8Array(out.buffer));
  }
  ds.close();
  writeFeatureStore(store, { extractor: 'pixels-4x4', inputSize: 4, dims: 48, classes: ds.classes, rows, counts: byClass.map((x) => x.length), indices: byClass, source: { kind: 'cifar10', name: 'cifar10', files: [bin], records: ds.size, selection: { perClass: null, seed: 0 } } });
}
