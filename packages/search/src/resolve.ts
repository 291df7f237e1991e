import fs from 'node:fs';
import path from 'node:path';
import { InputError, repoRootOf } from '@metad2a/core';
import { loadSearchModel, type SearchModel } from './model.js';

/** Environment variable naming the search model folder used when no --checkpoint is given. */
export const MODEL_ENV = 'METAD2A_MODEL';
/** Where the shipped meta-trained model lives, relative to the repository root. */
export const DEFAULT_MODEL_SUBDIR = path.join('datasets', 'models', 'default');
/** A feature store beside model.json with this name is the default dataset when model.json names none. */
export const DEFAULT_DATASET_FILE = 'default-dataset.json';

/** The default model folder: $METAD2A_MODEL, else <repo root>/datasets/models/default (null outside a checkout). */
export function defaultModelDir(): string | null {
  const env = process.env[MODEL_ENV];
  if (env) return path.resolve(env);
  const root = repoRootOf(import.meta.url);
  return root ? path.join(root, DEFAULT_MODEL_SUBDIR) : null;
}

const HOW_TO_GET =
  `pass --checkpoint <folder with model.json> (made by 'metad2a-trainer meta-train'), set ${MODEL_ENV}, ` +
  `or put the shipped model in <repo>/${DEFAULT_MODEL_SUBDIR.split(path.sep).join('/')}`;

/** Load the model at `dir`, or the default one; a missing model is one clear InputError saying how to get one. */
export function openSearchModel(dir?: string): SearchModel {
  const chosen = dir ? path.resolve(dir) : defaultModelDir();
  if (!chosen) throw new InputError({}, 'no search model given and no repository checkout to find the shipped one in', HOW_TO_GET);
  if (!fs.existsSync(path.join(chosen, 'model.json'))) {
    throw new InputError({ file: chosen }, dir ? 'not a search model folder (no model.json)' : 'no shipped search model here yet (no model.json)', HOW_TO_GET);
  }
  return loadSearchModel(chosen);
}

/**
 * The dataset a model searches for when none is given: model.json's `defaultDataset` (a path relative
 * to the model folder: a feature store manifest, a features file or any dataset spec), else a
 * feature store named default-dataset.json beside model.json.
 */
export function modelDefaultDataset(model: SearchModel): string {
  const file = path.join(model.dir, 'model.json');
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { defaultDataset?: unknown };
  if (raw.defaultDataset !== undefined) {
    if (typeof raw.defaultDataset !== 'string' || !raw.defaultDataset) throw new InputError({ file, field: 'defaultDataset' }, 'must be a path relative to the model folder');
    const p = path.resolve(model.dir, raw.defaultDataset);
    if (!fs.existsSync(p)) throw new InputError({ file, field: 'defaultDataset' }, `names ${p}, which does not exist`, 'pass --dataset, or restore the shipped feature store');
    return p;
  }
  const beside = path.join(model.dir, DEFAULT_DATASET_FILE);
  if (fs.existsSync(beside)) return beside;
  throw new InputError({ file, field: 'defaultDataset' }, 'the model names no default dataset', `pass --dataset <folder|cifar .bin|idx|features file|feature store>`);
}
