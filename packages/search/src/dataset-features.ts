import fs from 'node:fs';
import path from 'node:path';
import { InputError, type Rng } from '@metad2a/core';
import {
  defaultCacheDir,
  ensureFeatureStore,
  FeatureStore,
  loadMobileNetExtractor,
  MOBILENET_V1_CUT,
  MOBILENET_V1_ID,
  openDataset,
  parseExtractorId,
  STORE_FORMAT,
  type FeatureExtractor,
  type ProgressFn,
} from '@metad2a/data-pipeline';
import type { DatasetSampler } from './types.js';

export interface DatasetFeaturesOptions {
  /** The extractor id the model was trained on; features must come from it. */
  extractor: string;
  featureDim: number;
  /** Samples per class the model draws; every class needs at least this many (unless allowFew). */
  numSample: number;
  /** Extractor id of a features file that does not name one itself. */
  featuresExtractor?: string;
  /** Where the image extractor's weights come from (URL, folder or model.json; default: Google's copy, cached). */
  extractorSource?: string;
  /** Images embedded per class for image datasets (default 100; 0 = all). */
  perClass?: number;
  /** Folder of cached feature stores (default <cache>/features). */
  cacheDir?: string;
  split?: 'train' | 'test';
  /** Sample classes with fewer than numSample rows with replacement instead of failing. */
  allowFew?: boolean;
  onProgress?: ProgressFn;
}

export interface DatasetFeatures {
  store: FeatureStore;
  /** 'feature-store' (given directly), 'features' (a .csv/.npy file) or 'images'. */
  kind: 'feature-store' | 'features' | 'images';
  /** The store's manifest path (a cache entry unless a store was given). */
  storePath: string;
  /** True when the features were computed now, false when an existing store was reused. */
  encoded: boolean;
  seconds: number;
}

function isStoreManifest(p: string): boolean {
  if (!p.toLowerCase().endsWith('.json') || !fs.existsSync(p) || !fs.statSync(p).isFile()) return false;
  try {
    return (JSON.parse(fs.readFileSync(p, 'utf8')) as { format?: unknown }).format === STORE_FORMAT;
  } catch {
    return false;
  }
}

/**
 * An extractor that loads its network only when asked to embed, so a cached store never pays for
 * loading (or downloading) MobileNet. Its dims are the model's featureDim, checked once loaded.
 */
function lazyMobileNet(id: string, featureDim: number, source: string | undefined): FeatureExtractor & { loaded: () => boolean } {
  const parsed = parseExtractorId(id)!;
  let net: Promise<FeatureExtractor> | null = null;
  let loaded = false;
  const get = async () => {
    net ??= loadMobileNetExtractor({ inputSize: parsed.inputSize, cutLayer: parsed.cut ?? MOBILENET_V1_CUT, source }).then((e) => {
      loaded = true;
      if (e.id !== id || e.dims !== featureDim) {
        e.dispose();
        throw new InputError({ file: e.modelDir }, `extractor gives '${e.id}' features of ${e.dims} dims, the model expects '${id}' with ${featureDim}`, 'point --extractor-source at the right network');
      }
      return e;
    });
    return net;
  };
  return {
    id,
    inputSize: parsed.inputSize,
    dims: featureDim,
    get modelDir() {
      return source ?? '(default)';
    },
    embed: async (images, o) => (await get()).embed(images, o),
    dispose: () => {
      void net?.then((e) => e.dispose(), () => undefined);
    },
    loaded: () => loaded,
  };
}

/**
 * Dataset spec -> feature store of the model's extractor, reusing a cached store keyed by the
 * dataset's files, the extractor and the selection. Accepts a feature store manifest, a features
 * file (.csv/.npy) or anything openDataset reads (image folders, CIFAR binaries, IDX, 'mnist').
 * Every mismatch with the model (extractor, width, too few images per class) is one InputError
 * with the fix.
 */
export async function datasetFeatures(spec: string, o: DatasetFeaturesOptions): Promise<DatasetFeatures> {
  const t0 = performance.now();
  let store: FeatureStore;
  let kind: DatasetFeatures['kind'];
  let encoded = false;
  const onProgress: ProgressFn = (done, total) => {
    encoded = true;
    o.onProgress?.(done, total);
  };
  const cacheDir = o.cacheDir ?? path.join(defaultCacheDir(), 'features');
  if (isStoreManifest(spec)) {
    kind = 'feature-store';
    store = FeatureStore.open(spec, { extractor: o.extractor });
  } else {
    const ds = await openDataset(spec, { split: o.split, extractor: o.featuresExtractor });
    if (ds.kind === 'features') {
      kind = 'features';
      const file = ds.source[0];
      if (!ds.extractor) {
        ds.close();
        throw new InputError(
          { file },
          `the features file does not name the extractor it came from; the model expects '${o.extractor}' features`,
          `add a first line '# extractor: ${o.extractor}' to the CSV or pass --features-extractor ${o.extractor}, if that is what made them`,
        );
      }
      if (ds.extractor !== o.extractor) {
        ds.close();
        throw new InputError({ file, field: 'extractor' }, `features were made by '${ds.extractor}', but the model expects '${o.extractor}'`, `re-encode the images with '${o.extractor}', or use a model meta-trained on '${ds.extractor}' features`);
      }
      if (ds.dims !== o.featureDim) {
        ds.close();
        throw new InputError({ file }, `features have ${ds.dims} dims, the model expects ${o.featureDim}`);
      }
      try {
        store = await ensureFeatureStore(ds, { dir: cacheDir, onProgress });
      } finally {
        ds.close();
      }
    } else {
      kind = 'images';
      const parsed = parseExtractorId(o.extractor);
      if (!parsed || parsed.model !== MOBILENET_V1_ID) {
        ds.close();
        throw new InputError(
          { file: spec },
          `the model expects '${o.extractor}' features, which this build cannot compute from images (it embeds with ${MOBILENET_V1_ID} only)`,
          `give a features file (.csv/.npy) or feature store made with '${o.extractor}'`,
        );
      }
      const extractor = lazyMobileNet(o.extractor, o.featureDim, o.extractorSource);
      const perClass = o.perClass === undefined ? 100 : o.perClass === 0 ? undefined : o.perClass;
      try {
        store = await ensureFeatureStore(ds, { dir: cacheDir, extractor, perClass, split: o.split, onProgress });
      } finally {
        extractor.dispose();
        ds.close();
      }
    }
  }
  checkCounts(store, spec, o);
  return { store, kind, storePath: store.manifestPath, encoded, seconds: (performance.now() - t0) / 1000 };
}

function checkCounts(store: FeatureStore, spec: string, o: DatasetFeaturesOptions): void {
  if (store.classes.length < 2) {
    store.close();
    throw new InputError({ file: spec }, `has ${store.classes.length} class; a dataset needs at least 2`, 'add a second class folder');
  }
  if (o.allowFew) return;
  const few = store.counts.map((n, c) => ({ n, c })).filter((x) => x.n < o.numSample);
  if (few.length) {
    store.close();
    const worst = few.reduce((a, b) => (b.n < a.n ? b : a));
    throw new InputError(
      { file: spec },
      `class '${store.classes[worst.c]}' has ${worst.n} image${worst.n === 1 ? '' : 's'}${few.length > 1 ? ` (${few.length} classes have fewer than ${o.numSample})` : ''}; the model draws ${o.numSample} per class`,
      `give every class at least ${o.numSample} images, or pass --allow-few to sample with replacement`,
    );
  }
}

/** Fresh class-major samples of numSample rows per class from a store, as the models expect. */
export function storeSampler(store: FeatureStore, numSample: number): DatasetSampler {
  return (rng: Rng) => {
    const s = store.sample({ rng, numSample });
    return { x: s.data, numClasses: s.classes.length, numSample, dim: s.dims };
  };
}
