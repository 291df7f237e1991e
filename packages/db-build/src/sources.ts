import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, InputError, repoRootOf } from '@metad2a/core';
import { BUILTIN_DATASETS, indicesByClass, openDataset, type ImageDataset, type TaskSource } from '@metad2a/data-pipeline';

/** Where named third-party datasets live: $METAD2A_DATA_DIR, else <repo root>/../shared/data. */
export const DATA_DIR_ENV = 'METAD2A_DATA_DIR';

/** Names resolved to a folder of the shared data directory (CIFAR/SVHN binaries). */
export const SHARED_DATASETS = ['cifar10', 'cifar10-subset', 'cifar100', 'svhn'] as const;

export function sharedDataDir(): string | null {
  const env = process.env[DATA_DIR_ENV];
  if (env) return path.resolve(env);
  const root = repoRootOf(import.meta.url);
  return root ? path.resolve(root, '..', 'shared', 'data') : null;
}

/**
 * A dataset tasks are drawn from, as a job carries it: `spec` is what each machine opens, either a
 * built-in name (resolved on that machine) or an absolute path (which every worker must see).
 */
export interface SourceRef {
  name: string;
  spec: string;
}

export interface OpenSource extends SourceRef {
  dataset: ImageDataset;
}

/** Parse one --sources entry: a built-in name, a path, or NAME=PATH. Does not open it. */
export function parseSourceSpec(entry: string): SourceRef {
  const text = entry.trim();
  if (!text) throw new ConfigError('sources', 'empty source name');
  const eq = text.indexOf('=');
  if (eq > 0) {
    const name = text.slice(0, eq).trim();
    const p = text.slice(eq + 1).trim();
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ConfigError('sources', `source name '${name}' may only hold letters, digits, '.', '_' and '-'`);
    return { name, spec: path.resolve(p) };
  }
  if ((BUILTIN_DATASETS as readonly string[]).includes(text) || (SHARED_DATASETS as readonly string[]).includes(text)) return { name: text, spec: text };
  return { name: path.basename(path.resolve(text)).replace(/\.[^.]+$/, ''), spec: path.resolve(text) };
}

function resolveSpec(ref: SourceRef): string {
  if ((SHARED_DATASETS as readonly string[]).includes(ref.spec)) {
    const dir = sharedDataDir();
    const p = dir ? path.join(dir, ref.spec) : null;
    if (!p || !fs.existsSync(p)) throw new ConfigError('sources', `source '${ref.spec}' not found${p ? ` at ${p}` : ''}`, `set ${DATA_DIR_ENV} to the folder holding ${ref.spec}/`);
    return p;
  }
  if ((BUILTIN_DATASETS as readonly string[]).includes(ref.spec)) return ref.spec;
  if (!fs.existsSync(ref.spec)) {
    throw new ConfigError('sources', `unknown source '${ref.spec}'`, `not a built-in name (${[...BUILTIN_DATASETS, ...SHARED_DATASETS].join(', ')}) nor an existing path`);
  }
  return ref.spec;
}

/** Open a source's training split (tasks draw their train and held-out test images from it). */
export async function openSource(ref: SourceRef): Promise<OpenSource> {
  const ds = await openDataset(resolveSpec(ref), { split: 'train', name: ref.name });
  if (ds.kind === 'features') {
    ds.close();
    throw new InputError({ file: ref.spec }, 'is a features file; building the database trains networks on images', 'give an image folder, CIFAR binaries or IDX files');
  }
  return { ...ref, dataset: ds };
}

/** The task-sampling view of an open source (class count and record indices per class). */
export function taskSourceOf(s: OpenSource): TaskSource {
  return { name: s.name, numClasses: s.dataset.classes.length, indicesByClass: indicesByClass(s.dataset.labels, s.dataset.classes.length) };
}

/** Opened datasets kept per process (a worker reads many jobs from the same few sources). */
const cache = new Map<string, Promise<OpenSource>>();

export function openSourceCached(ref: SourceRef): Promise<OpenSource> {
  const key = `${ref.name}\u0000${ref.spec}`;
  let p = cache.get(key);
  if (!p) {
    p = openSource(ref);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

export function closeSourceCache(): void {
  for (const p of cache.values()) p.then((s) => s.dataset.close(), () => undefined);
  cache.clear();
}
