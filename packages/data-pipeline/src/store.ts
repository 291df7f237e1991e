import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { ConfigError, InputError, Rng, writeChunksAtomic, writeFileAtomic } from '@metad2a/core';
import type { ImageDataset } from './datasets.js';
import type { FeatureDataset } from './features-file.js';
import type { FeatureExtractor, ProgressFn } from './extractor.js';
import { defaultCacheDir, parseExtractorId } from './extractor.js';

export const STORE_FORMAT = 'metad2a-feature-store';
export const STORE_VERSION = 1;

/** The JSON half of a feature store; the binary half holds float32 rows, class-major. */
export interface FeatureStoreManifest {
  format: typeof STORE_FORMAT;
  version: number;
  /** e.g. 'mobilenet_v1_1.0@96'; checked on every open. */
  extractor: string;
  inputSize: number | null;
  dims: number;
  dtype: 'float32';
  /** File name of the binary, beside the manifest. */
  data: string;
  bytes: number;
  classes: string[];
  /** Rows per class; class c occupies rows offsets[c] .. offsets[c]+counts[c]-1. */
  counts: number[];
  offsets: number[];
  source: {
    kind: string;
    name: string;
    files: string[];
    split?: string;
    /** Records in the whole dataset. */
    records: number;
    /** How rows were chosen: all records, or perClass per class drawn with seed. */
    selection: { perClass: number | null; seed: number };
  };
  /** Dataset record index of every row, per class (row order). */
  indices: number[][];
  created: string;
}

export interface SampledFeatures {
  /** [classes.length * numSample, dims], class-major: rows 0..numSample-1 are classes[0], ... */
  data: Float32Array;
  classes: number[];
  numSample: number;
  dims: number;
  /** Classes with fewer than numSample rows, which were therefore sampled WITH replacement. */
  replaced: number[];
}

function storePaths(p: string): { manifest: string; stem: string } {
  const manifest = p.endsWith('.json') ? p : `${p}.json`;
  return { manifest, stem: manifest.slice(0, -'.json'.length) };
}

/** What a consumer expects: an extractor id, or '*' to accept any (inspection only). */
export interface OpenStoreOptions {
  extractor: string | '*';
  dims?: number;
}

export class FeatureStore {
  private fd: number | null;
  private constructor(
    readonly manifestPath: string,
    readonly manifest: FeatureStoreManifest,
    readonly dataPath: string,
  ) {
    this.fd = fs.openSync(dataPath, 'r');
  }

  /**
   * Open and validate a store. `extractor` is required on purpose: features of different
   * extractors or input sizes must never be mixed silently.
   */
  static open(p: string, options: OpenStoreOptions): FeatureStore {
    const { manifest: mpath } = storePaths(p);
    if (!fs.existsSync(mpath)) throw new InputError({ file: mpath }, 'feature store manifest not found', 'create it with encodeDataset / `cli encode-dataset`');
    let m: FeatureStoreManifest;
    try {
      m = JSON.parse(fs.readFileSync(mpath, 'utf8')) as FeatureStoreManifest;
    } catch (e) {
      throw new InputError({ file: mpath }, `not valid JSON: ${(e as Error).message}`);
    }
    const bad = (field: string, problem: string): never => {
      throw new InputError({ file: mpath, field }, problem);
    };
    if (m.format !== STORE_FORMAT) bad('format', `expected '${STORE_FORMAT}', got '${m.format}'`);
    if (m.version !== STORE_VERSION) bad('version', `unsupported version ${m.version} (this build reads ${STORE_VERSION})`);
    if (typeof m.extractor !== 'string' || !m.extractor) bad('extractor', 'missing extractor id');
    if (!Number.isInteger(m.dims) || m.dims <= 0) bad('dims', `invalid ${m.dims}`);
    if (!Array.isArray(m.classes) || !Array.isArray(m.counts) || m.classes.length !== m.counts.length) bad('counts', 'classes and counts differ in length');
    if (!Array.isArray(m.offsets) || m.offsets.length !== m.counts.length) bad('offsets', 'offsets and counts differ in length');
    let rows = 0;
    m.counts.forEach((c, k) => {
      if (!Number.isInteger(c) || c < 0) bad(`counts[${k}]`, `invalid count ${c}`);
      if (m.offsets[k] !== rows) bad(`offsets[${k}]`, `expected ${rows}, got ${m.offsets[k]}`);
      rows += c;
    });
    if (m.bytes !== rows * m.dims * 4) bad('bytes', `${m.bytes} bytes for ${rows} rows x ${m.dims} float32`);
    const dpath = path.join(path.dirname(mpath), m.data);
    if (!fs.existsSync(dpath)) throw new InputError({ file: dpath }, 'feature store data file missing', `named by ${mpath}`);
    const size = fs.statSync(dpath).size;
    if (size !== m.bytes) throw new InputError({ file: dpath }, `has ${size} bytes, manifest says ${m.bytes}`, 'truncated or from another write');
    if (options.extractor !== '*' && options.extractor !== m.extractor) {
      throw new InputError(
        { file: mpath, field: 'extractor' },
        `features were made by '${m.extractor}', but '${options.extractor}' is expected`,
        `re-encode the dataset with '${options.extractor}'${parseExtractorId(options.extractor) ? `, input size ${parseExtractorId(options.extractor)!.inputSize}` : ''}`,
      );
    }
    if (options.dims !== undefined && options.dims !== m.dims) throw new InputError({ file: mpath, field: 'dims' }, `features have ${m.dims} dims, ${options.dims} expected`);
    return new FeatureStore(mpath, m, dpath);
  }

  get classes(): string[] {
    return this.manifest.classes;
  }
  get counts(): number[] {
    return this.manifest.counts;
  }
  get dims(): number {
    return this.manifest.dims;
  }
  get extractor(): string {
    return this.manifest.extractor;
  }

  /** Rows `rows` (0-based within the class) of class c, in that order, as [rows.length, dims]. */
  readRows(c: number, rows: readonly number[]): Float32Array {
    if (this.fd === null) throw new Error(`${this.manifestPath}: store closed`);
    const { counts, offsets, dims } = this.manifest;
    if (!Number.isInteger(c) || c < 0 || c >= counts.length) throw new RangeError(`class ${c} out of range 0..${counts.length - 1}`);
    const out = new Float32Array(rows.length * dims);
    const view = new Uint8Array(out.buffer);
    const rowBytes = dims * 4;
    for (let k = 0; k < rows.length; k++) {
      const r = rows[k];
      if (!Number.isInteger(r) || r < 0 || r >= counts[c]) throw new RangeError(`row ${r} out of range for class ${c} (${counts[c]} rows)`);
      // Runs of consecutive rows are read with one call.
      let run = 1;
      while (k + run < rows.length && rows[k + run] === r + run) run++;
      const got = fs.readSync(this.fd, view, k * rowBytes, run * rowBytes, (offsets[c] + r) * rowBytes);
      if (got !== run * rowBytes) throw new InputError({ file: this.dataPath, record: offsets[c] + r }, 'short read: data file changed on disk?');
      k += run - 1;
    }
    return out;
  }

  /** All rows of class c. */
  readClass(c: number): Float32Array {
    return this.readRows(
      c,
      Array.from({ length: this.manifest.counts[c] }, (_, i) => i),
    );
  }

  /**
   * Draw numSample rows per class, class-major, as the set encoder expects. Rows are drawn
   * without replacement (a seeded permutation, as the original); a class with fewer than
   * numSample rows is drawn WITH replacement and listed in `replaced`.
   */
  sample(options: { rng: Rng; numSample?: number; classes?: readonly number[] }): SampledFeatures {
    const numSample = options.numSample ?? 20;
    if (!Number.isInteger(numSample) || numSample <= 0) throw new ConfigError('numSample', `${numSample}`, 'a positive integer');
    const classes = options.classes ? [...options.classes] : this.manifest.counts.map((_, i) => i);
    const dims = this.manifest.dims;
    const data = new Float32Array(classes.length * numSample * dims);
    const replaced: number[] = [];
    classes.forEach((c, k) => {
      const n = this.manifest.counts[c];
      if (n === undefined) throw new RangeError(`class ${c} out of range 0..${this.manifest.counts.length - 1}`);
      if (n === 0) throw new InputError({ file: this.manifestPath, field: `counts[${c}]` }, `class '${this.manifest.classes[c]}' has no features`);
      let rows: number[];
      if (n >= numSample) rows = options.rng.sampleWithoutReplacement(n, numSample);
      else {
        replaced.push(c);
        rows = Array.from({ length: numSample }, () => options.rng.int(n));
      }
      data.set(this.readRows(c, rows), k * numSample * dims);
    });
    return { data, classes, numSample, dims, replaced };
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Shorthand for FeatureStore.open. */
export function openFeatureStore(p: string, options: OpenStoreOptions): FeatureStore {
  return FeatureStore.open(p, options);
}

export interface WriteStoreInput {
  extractor: string;
  inputSize: number | null;
  dims: number;
  classes: string[];
  /** Row source: per class, a list of chunks whose concatenation is that class's rows. */
  rows: Iterable<Uint8Array>;
  counts: number[];
  indices: number[][];
  source: FeatureStoreManifest['source'];
}

/**
 * Write the binary (under a fresh unique name) and then the manifest, each atomically: a reader sees
 * the old pair or the new pair, never a mix. The previous binary is removed afterwards.
 */
export function writeFeatureStore(p: string, input: WriteStoreInput): FeatureStoreManifest {
  const { manifest: mpath, stem } = storePaths(p);
  const total = input.counts.reduce((a, b) => a + b, 0);
  const offsets: number[] = [];
  input.counts.reduce((acc, c) => (offsets.push(acc), acc + c), 0);
  const dataName = `${path.basename(stem)}.${crypto.randomBytes(4).toString('hex')}.bin`;
  const dpath = path.join(path.dirname(mpath), dataName);
  let written = 0;
  writeChunksAtomic(
    dpath,
    (function* () {
      for (const c of input.rows) {
        written += c.byteLength;
        yield c;
      }
    })(),
  );
  if (written !== total * input.dims * 4) {
    fs.rmSync(dpath, { force: true });
    throw new Error(`writeFeatureStore: ${written} bytes of rows for ${total} x ${input.dims} float32`);
  }
  let previous: string | null = null;
  if (fs.existsSync(mpath)) {
    try {
      previous = (JSON.parse(fs.readFileSync(mpath, 'utf8')) as FeatureStoreManifest).data ?? null;
    } catch {
      previous = null;
    }
  }
  const manifest: FeatureStoreManifest = {
    format: STORE_FORMAT,
    version: STORE_VERSION,
    extractor: input.extractor,
    inputSize: input.inputSize,
    dims: input.dims,
    dtype: 'float32',
    data: dataName,
    bytes: written,
    classes: input.classes,
    counts: input.counts,
    offsets,
    source: input.source,
    indices: input.indices,
    created: new Date().toISOString(),
  };
  writeFileAtomic(mpath, `${JSON.stringify(manifest)}\n`);
  if (previous && previous !== dataName && !previous.includes('/')) fs.rmSync(path.join(path.dirname(mpath), previous), { force: true });
  return manifest;
}

export interface EncodeOptions {
  /** Manifest path of the store to write (`.json`; the binary goes beside it). */
  out: string;
  /** Required for image datasets; features files bring their own features. */
  extractor?: FeatureExtractor;
  /** Extractor id for a features file that does not name one (default 'external:<name>'). */
  extractorId?: string;
  /** At most this many records per class, drawn with `seed` (default: all records). */
  perClass?: number;
  seed?: number;
  batchSize?: number;
  /** Records per resumable chunk (default 512). */
  chunkSize?: number;
  onProgress?: ProgressFn;
  /** Reuse finished chunks of an interrupted run with the same plan (default true). */
  resume?: boolean;
  split?: string;
}

function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Encode a dataset into a per-class feature store. Work is split into chunks saved under
 * `<out>.partial/`; a killed run resumes from the finished chunks when restarted with the same plan.
 */
export async function encodeDataset(dataset: ImageDataset | FeatureDataset, options: EncodeOptions): Promise<FeatureStore> {
  const C = dataset.classes.length;
  const seed = options.seed ?? 0;
  const byClass: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < dataset.labels.length; i++) byClass[dataset.labels[i]].push(i);
  const empty = byClass.findIndex((x) => x.length === 0);
  if (empty >= 0) throw new InputError({ file: dataset.source[0], field: `class ${empty}` }, `class '${dataset.classes[empty]}' has no records`, 'empty class');
  const perClass = options.perClass;
  if (perClass !== undefined && (!Number.isInteger(perClass) || perClass <= 0)) throw new ConfigError('perClass', `${perClass}`, 'a positive integer');
  const rng = new Rng(seed);
  const indices = byClass.map((idx, c) => {
    if (perClass === undefined || idx.length <= perClass) return idx;
    const pick = rng.fork(c).sampleWithoutReplacement(idx.length, perClass).map((k) => idx[k]);
    return pick.sort((a, b) => a - b);
  });
  const counts = indices.map((x) => x.length);
  const flat = indices.flat();

  let extractor: string;
  let dims: number;
  let inputSize: number | null;
  if (dataset.kind === 'features') {
    extractor = dataset.extractor ?? options.extractorId ?? `external:${dataset.name}`;
    if (options.extractor && options.extractor.id !== extractor) throw new ConfigError('extractor', `features file holds '${extractor}' features, not '${options.extractor.id}'`);
    dims = dataset.dims;
    inputSize = parseExtractorId(extractor)?.inputSize ?? null;
  } else {
    if (!options.extractor) throw new ConfigError('extractor', 'an image dataset needs a feature extractor', 'loadMobileNetExtractor()');
    extractor = options.extractor.id;
    dims = options.extractor.dims;
    inputSize = options.extractor.inputSize;
  }

  const { manifest: mpath } = storePaths(options.out);
  const partial = `${mpath}.partial`;
  const chunkSize = options.chunkSize ?? 512;
  const plan = {
    extractor,
    dims,
    dataset: { kind: dataset.kind, name: dataset.name, files: dataset.source, records: dataset.size },
    chunkSize,
    rows: crypto.createHash('sha256').update(Int32Array.from(flat)).digest('hex'),
  };
  const planText = JSON.stringify(plan);
  const planFile = path.join(partial, 'plan.json');
  if (options.resume === false || !fs.existsSync(planFile) || fs.readFileSync(planFile, 'utf8') !== planText) {
    fs.rmSync(partial, { recursive: true, force: true });
    fs.mkdirSync(partial, { recursive: true });
    writeFileAtomic(planFile, planText);
  }
  const nChunks = Math.ceil(flat.length / chunkSize);
  const chunkFile = (k: number) => path.join(partial, `chunk-${String(k).padStart(6, '0')}.f32`);
  const chunkLen = (k: number) => Math.min(chunkSize, flat.length - k * chunkSize);
  let done = 0;
  for (let k = 0; k < nChunks; k++) {
    const f = chunkFile(k);
    const len = chunkLen(k);
    if (fs.existsSync(f) && fs.statSync(f).size === len * dims * 4) {
      done += len;
      options.onProgress?.(done, flat.length);
      continue;
    }
    const idx = flat.slice(k * chunkSize, k * chunkSize + len);
    let feats: Float32Array;
    if (dataset.kind === 'features') {
      feats = dataset.readRows(idx);
    } else {
      feats = new Float32Array(len * dims);
      const batch = options.batchSize ?? 32;
      for (let b = 0; b < len; b += batch) {
        const part = idx.slice(b, b + batch);
        const images = await dataset.read(part);
        feats.set(await options.extractor!.embed(images, { batchSize: batch }), b * dims);
        options.onProgress?.(done + b + part.length, flat.length);
      }
    }
    writeFileAtomic(f, f32bytes(feats));
    done += len;
    if (dataset.kind === 'features') options.onProgress?.(done, flat.length);
  }
  writeFeatureStore(mpath, {
    extractor,
    inputSize,
    dims,
    classes: dataset.classes,
    counts,
    indices,
    rows: (function* () {
      for (let k = 0; k < nChunks; k++) yield fs.readFileSync(chunkFile(k));
    })(),
    source: {
      kind: dataset.kind,
      name: dataset.name,
      files: dataset.source.map((f) => path.resolve(f)),
      ...(options.split ? { split: options.split } : {}),
      records: dataset.size,
      selection: { perClass: perClass ?? null, seed },
    },
  });
  fs.rmSync(partial, { recursive: true, force: true });
  return FeatureStore.open(mpath, { extractor });
}

export interface EnsureStoreOptions extends Omit<EncodeOptions, 'out' | 'resume'> {
  /** Folder of cached stores (default <defaultCacheDir()>/features, i.e. ~/.cache/metad2a/features). */
  dir?: string;
}

/**
 * The feature store of (dataset files as they are now, extractor, selection), encoded on first use
 * and reused afterwards: the store's name hashes the source files' paths, sizes and mtimes, the
 * extractor id and the selection, so an edited dataset or another extractor gets a new store.
 */
export async function ensureFeatureStore(dataset: ImageDataset | FeatureDataset, options: EnsureStoreOptions): Promise<FeatureStore> {
  const extractor = dataset.kind === 'features' ? (dataset.extractor ?? options.extractorId ?? `external:${dataset.name}`) : options.extractor?.id;
  if (!extractor) throw new ConfigError('extractor', 'an image dataset needs a feature extractor', 'loadMobileNetExtractor()');
  const files = dataset.source.map((f) => {
    const st = fs.statSync(f);
    return [path.resolve(f), st.size, Math.round(st.mtimeMs)];
  });
  const key = crypto
    .createHash('sha256')
    .update(JSON.stringify({ kind: dataset.kind, files, extractor, perClass: options.perClass ?? null, seed: options.seed ?? 0, split: options.split ?? null }))
    .digest('hex')
    .slice(0, 16);
  const safe = (s: string) => s.replace(/[^\w.@-]+/g, '_');
  const out = path.join(options.dir ?? path.join(defaultCacheDir(), 'features'), `${safe(dataset.name)}-${safe(extractor)}-${key}.json`);
  if (fs.existsSync(out)) {
    try {
      return FeatureStore.open(out, { extractor });
    } catch {
      // damaged cache entry: rebuild it below
    }
  }
  return encodeDataset(dataset, { ...options, out, resume: true });
}
