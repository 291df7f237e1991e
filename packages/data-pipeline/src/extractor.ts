import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { ConfigError, InputError, writeFileAtomic } from '@metad2a/core';
import { resizeRgb, type RgbImage } from './image.js';

/** Google's public copy of the model; fetched on first use and cached. */
export const MOBILENET_V1_URL = 'https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_1.0_224/model.json';
export const MOBILENET_V1_ID = 'mobilenet_v1_1.0';
export const MOBILENET_V1_CUT = 'conv_pw_12_relu';
/** 96 px: 0.535 nearest-centroid accuracy on CIFAR-10 at 15 ms/image on 2 cores (shared README), vs 0.46 at 224. */
export const DEFAULT_INPUT_SIZE = 96;
export const CACHE_ENV = 'METAD2A_CACHE_DIR';

export type ProgressFn = (done: number, total: number) => void;

/** The cache folder: $METAD2A_CACHE_DIR, else $XDG_CACHE_HOME/metad2a, else ~/.cache/metad2a. */
export function defaultCacheDir(): string {
  if (process.env[CACHE_ENV]) return process.env[CACHE_ENV]!;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'metad2a');
}

/**
 * The id stored with every feature file, e.g. 'mobilenet_v1_1.0@96'. Features with different ids
 * come from different networks or input sizes and must never be mixed.
 */
export function extractorId(model: string, inputSize: number, cut?: string): string {
  return `${model}${cut ? `:${cut}` : ''}@${inputSize}`;
}

/** Parse an extractor id back into its parts (null for ids of external features without '@size'). */
export function parseExtractorId(id: string): { model: string; cut: string | null; inputSize: number } | null {
  const m = /^([^:@]+)(?::([^@]+))?@(\d+)$/.exec(id);
  return m ? { model: m[1], cut: m[2] ?? null, inputSize: Number(m[3]) } : null;
}

export interface FeatureExtractor {
  readonly id: string;
  readonly inputSize: number;
  readonly dims: number;
  /** Where the weights were loaded from (folder). */
  readonly modelDir: string;
  /** Features [images.length, dims], row-major. */
  embed(images: readonly RgbImage[], options?: { batchSize?: number; onProgress?: ProgressFn }): Promise<Float32Array>;
  dispose(): void;
}

export interface LoadExtractorOptions {
  /** A model.json URL (http/https), a folder holding model.json, or a model.json path. Default: MOBILENET_V1_URL. */
  source?: string;
  /** Where downloaded models are kept (default defaultCacheDir()). */
  cacheDir?: string;
  /** Square input size in pixels (default 96). */
  inputSize?: number;
  /** Layer whose output is average-pooled into the feature (default conv_pw_12_relu). */
  cutLayer?: string;
  /** Model name in the extractor id (default mobilenet_v1_1.0). */
  modelId?: string;
  /** Batch size of embed() (default 32). */
  batchSize?: number;
  /** Injected for tests or proxies; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Called for every file downloaded. */
  onDownload?: (file: string, bytes: number) => void;
}

interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}
interface WeightGroup {
  paths: string[];
  weights: WeightSpec[];
}
interface ModelJson {
  modelTopology: { model_config: { class_name: string; config: { layers: KerasLayer[]; input_layers: unknown[]; output_layers: unknown[]; name?: string } } } & Record<string, unknown>;
  weightsManifest: WeightGroup[];
}
interface KerasLayer {
  class_name: string;
  name: string;
  config: Record<string, unknown>;
  inbound_nodes: Array<Array<[string, number, number, unknown?]>>;
}

const bytesOf = (w: WeightSpec) => 4 * w.shape.reduce((a, b) => a * b, 1);

/**
 * The Keras functional topology cut at `cut`: only the cut layer's ancestors are kept, so the
 * weights after it (e.g. MobileNet's conv_pw_13 and classifier) are neither needed nor loaded.
 */
export function pruneTopology(model: ModelJson, cut: string, file: string): { topology: ModelJson['modelTopology']; keep: Set<string> } {
  const mc = model.modelTopology?.model_config;
  if (!mc || !Array.isArray(mc.config?.layers)) throw new InputError({ file, field: 'modelTopology' }, 'not a Keras layers model.json (no model_config.config.layers)');
  const byName = new Map(mc.config.layers.map((l) => [l.name, l]));
  if (!byName.has(cut)) throw new ConfigError('cutLayer', `layer '${cut}' not in ${file}`, `layers include ${[...byName.keys()].slice(-6).join(', ')}`);
  const keep = new Set<string>();
  const stack = [cut];
  while (stack.length) {
    const n = stack.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    for (const node of byName.get(n)?.inbound_nodes ?? []) for (const inb of node) stack.push(inb[0]);
  }
  const layers = mc.config.layers
    .filter((l) => keep.has(l.name))
    .map((l) => (l.class_name === 'InputLayer' ? { ...l, config: { ...l.config, batch_input_shape: [null, null, null, 3] } } : l));
  const inputs = (mc.config.input_layers as Array<[string, number, number]>).filter((x) => keep.has(x[0]));
  const topology = {
    ...model.modelTopology,
    model_config: { ...mc, config: { ...mc.config, layers, input_layers: inputs, output_layers: [[cut, 0, 0]] } },
  };
  return { topology, keep };
}

/** The weights of kept layers (Keras names weights '<layer>/<var>'). */
function neededGroups(manifest: WeightGroup[], keep: Set<string>): Array<{ group: WeightGroup; needed: boolean[] }> {
  return manifest.map((group) => ({ group, needed: group.weights.map((w) => keep.has(w.name.split('/')[0])) }));
}

async function fetchBytes(doFetch: typeof fetch, url: string): Promise<Buffer> {
  let res: Response;
  try {
    res = await doFetch(url);
  } catch (e) {
    throw new InputError({ file: url }, `download failed: ${(e as Error).message}`, 'check the network, or pass a local model folder', { cause: e });
  }
  if (!res.ok) throw new InputError({ file: url }, `download failed: HTTP ${res.status} ${res.statusText}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * Download model.json and only the shards the cut network needs into the cache (each file
 * atomically; model.json last, so a present model.json means a complete cache entry).
 */
async function ensureCached(url: string, cacheDir: string, cut: string, doFetch: typeof fetch, onDownload?: (file: string, bytes: number) => void): Promise<string> {
  const key = crypto.createHash('sha256').update(`${url}#${cut}`).digest('hex').slice(0, 12);
  const stem = url.replace(/\/model\.json$/, '').split('/').pop() || 'model';
  const dir = path.join(cacheDir, 'models', `${stem.replace(/[^\w.-]/g, '_')}-${key}`);
  if (fs.existsSync(path.join(dir, 'model.json'))) return dir;
  const jsonBytes = await fetchBytes(doFetch, url);
  let model: ModelJson;
  try {
    model = JSON.parse(jsonBytes.toString('utf8')) as ModelJson;
  } catch (e) {
    throw new InputError({ file: url }, `not JSON: ${(e as Error).message}`);
  }
  const { keep } = pruneTopology(model, cut, url);
  const base = url.slice(0, url.lastIndexOf('/') + 1);
  for (const { group, needed } of neededGroups(model.weightsManifest, keep)) {
    if (!needed.some(Boolean)) continue;
    for (const p of group.paths) {
      const target = path.join(dir, p);
      if (fs.existsSync(target)) continue;
      const bytes = await fetchBytes(doFetch, new URL(p, base).toString());
      writeFileAtomic(target, bytes);
      onDownload?.(p, bytes.length);
    }
  }
  writeFileAtomic(path.join(dir, 'model.json'), jsonBytes);
  onDownload?.('model.json', jsonBytes.length);
  return dir;
}

/** Read the needed weights from a local folder; a missing or short shard that is needed is an error. */
function loadWeights(dir: string, model: ModelJson, keep: Set<string>): { specs: WeightSpec[]; data: ArrayBuffer } {
  const specs: WeightSpec[] = [];
  const parts: Buffer[] = [];
  for (const { group, needed } of neededGroups(model.weightsManifest, keep)) {
    if (!needed.some(Boolean)) continue;
    const names = group.weights.filter((_, i) => needed[i]).map((w) => w.name);
    const bufs = group.paths.map((p) => {
      const f = path.join(dir, p);
      if (!fs.existsSync(f)) throw new InputError({ file: f }, `weight shard missing; it holds ${names.join(', ')}, needed up to the cut layer`);
      return fs.readFileSync(f);
    });
    const all = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
    let off = 0;
    group.weights.forEach((w, i) => {
      if (w.dtype !== 'float32' || w.quantization) throw new InputError({ file: path.join(dir, group.paths[0]), field: w.name }, `unsupported weight type ${w.dtype}${w.quantization ? ' (quantized)' : ''}`);
      const n = bytesOf(w);
      if (needed[i]) {
        if (off + n > all.length) throw new InputError({ file: path.join(dir, group.paths[0]), field: w.name }, `shard group has ${all.length} bytes, weight needs bytes ${off}..${off + n}`, 'truncated download? clear the cache');
        specs.push(w);
        parts.push(all.subarray(off, off + n));
      }
      off += n;
    });
  }
  const data = Buffer.concat(parts);
  return { specs, data: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer };
}

/**
 * A frozen ImageNet CNN cut at a layer, global-average-pooled: MobileNet v1 1.0 cut at
 * conv_pw_12_relu gives 1024-d features. Images are resized to inputSize and scaled x/127.5-1
 * as MobileNet expects. Call initBackend() from @metad2a/nn first.
 */
export async function loadMobileNetExtractor(options: LoadExtractorOptions = {}): Promise<FeatureExtractor> {
  const inputSize = options.inputSize ?? DEFAULT_INPUT_SIZE;
  if (!Number.isInteger(inputSize) || inputSize < 32 || inputSize > 1024) throw new ConfigError('inputSize', `${inputSize}`, 'an integer from 32 to 1024 (96 is the default)');
  const cut = options.cutLayer ?? MOBILENET_V1_CUT;
  const source = options.source ?? MOBILENET_V1_URL;
  let dir: string;
  if (/^https?:\/\//.test(source)) {
    const doFetch = options.fetch ?? globalThis.fetch;
    dir = await ensureCached(source, options.cacheDir ?? defaultCacheDir(), cut, doFetch, options.onDownload);
  } else {
    dir = source.endsWith('.json') ? path.dirname(source) : source;
  }
  const jsonFile = source.endsWith('.json') && !/^https?:/.test(source) ? source : path.join(dir, 'model.json');
  if (!fs.existsSync(jsonFile)) throw new InputError({ file: jsonFile }, 'model.json not found');
  const model = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as ModelJson;
  const { topology, keep } = pruneTopology(model, cut, jsonFile);
  const { specs, data } = loadWeights(dir, model, keep);
  const net = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'], weightSpecs: specs as tf.io.WeightsManifestEntry[], weightData: data }));
  const outShape = net.outputs[0].shape;
  const dims = outShape[outShape.length - 1] as number;
  const id = extractorId(options.modelId ?? MOBILENET_V1_ID, inputSize, cut === MOBILENET_V1_CUT ? undefined : cut);
  const defaultBatch = options.batchSize ?? 32;
  const px = inputSize * inputSize * 3;

  return {
    id,
    inputSize,
    dims,
    modelDir: dir,
    async embed(images, opts = {}) {
      const batch = opts.batchSize ?? defaultBatch;
      const out = new Float32Array(images.length * dims);
      for (let b0 = 0; b0 < images.length; b0 += batch) {
        const n = Math.min(batch, images.length - b0);
        const x = new Float32Array(n * px);
        for (let k = 0; k < n; k++) {
          const img = resizeRgb(images[b0 + k], inputSize);
          const o = k * px;
          for (let i = 0; i < px; i++) x[o + i] = img.data[i] / 127.5 - 1;
        }
        const feat = tf.tidy(() => (net.predict(tf.tensor4d(x, [n, inputSize, inputSize, 3])) as tf.Tensor4D).mean([1, 2]));
        out.set(await feat.data(), b0 * dims);
        feat.dispose();
        opts.onProgress?.(b0 + n, images.length);
      }
      return out;
    },
    dispose() {
      net.dispose();
    },
  };
}
