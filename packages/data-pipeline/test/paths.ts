import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHARED = path.resolve(REPO, '../shared/data');
export const FIXTURES = path.join(REPO, 'test-fixtures/images');
export const CIFAR_SUBSET = path.join(SHARED, 'cifar10-subset');
export const CIFAR_FULL = path.join(SHARED, 'cifar10');
export const MOBILENET = path.join(SHARED, 'mobilenet-v1-imagenet');
export const NB201_CSV = path.join(SHARED, 'nb201/nats_bench.csv');

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dp-${tag}-`));
}

/** Record r of a CIFAR-10 binary: label and interleaved RGB, read straight from the bytes. */
export function cifarRecord(file: string, r: number): { label: number; rgb: Uint8Array } {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(3073);
  fs.readSync(fd, buf, 0, 3073, r * 3073);
  fs.closeSync(fd);
  const rgb = new Uint8Array(3072);
  for (let i = 0; i < 1024; i++) {
    rgb[3 * i] = buf[1 + i];
    rgb[3 * i + 1] = buf[1 + 1024 + i];
    rgb[3 * i + 2] = buf[1 + 2048 + i];
  }
  return { label: buf[0], rgb };
}
