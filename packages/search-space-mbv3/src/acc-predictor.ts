import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, InputError } from '@metad2a/core';
import { OFA_DEFAULT_RESOLUTION, OFA_EXPAND_RATIOS, OFA_KERNEL_SIZES, OFA_NUM_SLOTS, assertOfaConfig, isActiveSlot, type OfaConfig } from './config.js';
import { defaultOfaDataDir, readJsonFile } from './data.js';

export const OFA_PREDICTOR_INPUT = 128;
const HIDDEN = 400;
/** Names and shapes of the MLP 128 -> 400 -> 400 -> 400 -> 1 (ReLU between), PyTorch [out, in]. */
const LAYERS: Array<[string, number, number]> = [
  ['0', HIDDEN, OFA_PREDICTOR_INPUT],
  ['2', HIDDEN, HIDDEN],
  ['4', HIDDEN, HIDDEN],
  ['6', 1, HIDDEN],
];

/**
 * The 128-d input of once-for-all's accuracy predictor (spec2feats): ks one-hot 20x3 (3,5,7),
 * e one-hot 20x3 (3,4,6), resolution one-hot 8 at (r-112) div 16; inactive slots set no bit.
 */
export function ofaPredictorFeatures(cfg: OfaConfig, resolution?: number): Float64Array {
  assertOfaConfig(cfg);
  const r = resolution ?? cfg.r ?? OFA_DEFAULT_RESOLUTION;
  const ri = Math.floor((r - 112) / 16);
  if (!Number.isInteger(r) || ri < 0 || ri > 7) throw new ConfigError('resolution', `the OFA accuracy predictor covers 112..239, got ${r}`);
  const x = new Float64Array(OFA_PREDICTOR_INPUT);
  for (let i = 0; i < OFA_NUM_SLOTS; i++) {
    if (!isActiveSlot(cfg.d, i)) continue;
    x[i * 3 + (OFA_KERNEL_SIZES as readonly number[]).indexOf(cfg.ks[i])] = 1;
    x[60 + i * 3 + (OFA_EXPAND_RATIOS as readonly number[]).indexOf(cfg.e[i])] = 1;
  }
  x[120 + ri] = 1;
  return x;
}

/**
 * once-for-all's ImageNet accuracy predictor for the w1.0 MobileNetV3 space (ofa_acc_predictor.*):
 * predicted top-1 (fraction) of a subnet with inherited supernet weights, on OFA's 10k holdout
 * images. Evaluated in float64 from the float32 weights; plain loops (no tensors) keep it exact,
 * synchronous and fast enough for thousands of subnets.
 */
export class OfaAccuracyPredictor {
  private constructor(
    private readonly weights: Float64Array[],
    private readonly biases: Float64Array[],
    readonly source: string,
  ) {}

  /** Load `ofa_acc_predictor.json` (manifest) and the float32 blob it names. */
  static load(manifestFile = path.join(defaultOfaDataDir(), 'ofa_acc_predictor.json')): OfaAccuracyPredictor {
    const man = readJsonFile(manifestFile) as { file?: unknown; tensors?: unknown };
    if (typeof man?.file !== 'string' || !Array.isArray(man.tensors)) throw new InputError({ file: manifestFile }, 'expected { file, tensors: [...] }');
    const blobFile = path.resolve(path.dirname(manifestFile), man.file);
    let buf: Buffer;
    try {
      buf = fs.readFileSync(blobFile);
    } catch (e) {
      throw new InputError({ file: blobFile }, `cannot read predictor weights: ${(e as Error).message}`);
    }
    if (buf.length % 4) throw new InputError({ file: blobFile }, `size ${buf.length} is not a multiple of 4 bytes`, 'the file is truncated');
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
    const byName = new Map<string, { shape: number[]; offset_floats: number; length_floats: number }>();
    (man.tensors as Array<Record<string, unknown>>).forEach((t, i) => {
      if (typeof t?.name !== 'string' || !Array.isArray(t.shape) || typeof t.offset_floats !== 'number' || typeof t.length_floats !== 'number') {
        throw new InputError({ file: manifestFile, field: `tensors[${i}]` }, 'expected { name, shape, offset_floats, length_floats }');
      }
      byName.set(t.name, t as never);
    });
    const get = (name: string, shape: number[]): Float64Array => {
      const t = byName.get(name);
      if (!t) throw new InputError({ file: manifestFile, field: name }, 'tensor missing');
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new InputError({ file: manifestFile, field: name }, `expected shape [${shape}], got [${t.shape}]`);
      }
      const n = shape.reduce((a, b) => a * b, 1);
      if (t.length_floats !== n || t.offset_floats < 0 || t.offset_floats + n > all.length) {
        throw new InputError({ file: manifestFile, field: name }, `floats ${t.offset_floats}..${t.offset_floats + t.length_floats} do not fit ${blobFile} (${all.length} floats)`);
      }
      return Float64Array.from(all.subarray(t.offset_floats, t.offset_floats + n));
    };
    const weights = LAYERS.map(([n, o, i]) => get(`${n}.weight`, [o, i]));
    const biases = LAYERS.map(([n, o]) => get(`${n}.bias`, [o]));
    return new OfaAccuracyPredictor(weights, biases, manifestFile);
  }

  /** Forward pass on a 128-d feature vector. */
  predictFeatures(x: ArrayLike<number>): number {
    return this.predictFeaturesBatch([x])[0];
  }

  /**
   * Forward pass on many feature vectors. Each weight row is applied to a block of inputs while
   * it is in cache, which is what makes thousands of subnets cheap in plain JS.
   */
  predictFeaturesBatch(xs: ReadonlyArray<ArrayLike<number>>): number[] {
    const out: number[] = [];
    const BLOCK = 32;
    for (let start = 0; start < xs.length; start += BLOCK) {
      let hs: Float64Array[] = xs.slice(start, start + BLOCK).map((x, k) => {
        if (x.length !== OFA_PREDICTOR_INPUT) throw new ConfigError('features', `vector ${start + k}: expected ${OFA_PREDICTOR_INPUT} values, got ${x.length}`);
        return Float64Array.from(x);
      });
      for (let l = 0; l < LAYERS.length; l++) {
        const nOut = LAYERS[l][1];
        const nIn = LAYERS[l][2];
        const W = this.weights[l];
        const b = this.biases[l];
        const relu = l < LAYERS.length - 1;
        const ys = hs.map(() => new Float64Array(nOut));
        for (let o = 0; o < nOut; o++) {
          const row = o * nIn;
          for (let k = 0; k < hs.length; k++) {
            const h = hs[k];
            let s = b[o];
            for (let i = 0; i < nIn; i++) s += W[row + i] * h[i];
            ys[k][o] = relu && s < 0 ? 0 : s;
          }
        }
        hs = ys;
      }
      for (const h of hs) out.push(h[0]);
    }
    return out;
  }

  /** Predicted ImageNet top-1 (fraction) of a config at resolution r (cfg.r or 224). */
  predict(cfg: OfaConfig, resolution?: number): number {
    return this.predictFeatures(ofaPredictorFeatures(cfg, resolution));
  }

  /** predict() over many configs (each at its own r, or `resolution` for all). */
  predictMany(cfgs: readonly OfaConfig[], resolution?: number): number[] {
    return this.predictFeaturesBatch(cfgs.map((c) => ofaPredictorFeatures(c, resolution)));
  }
}
