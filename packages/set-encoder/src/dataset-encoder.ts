import * as tf from '@tensorflow/tfjs';
import { ShapeError, type Rng } from '@metad2a/core';
import { Module } from '@metad2a/nn';
import { SetPool } from './blocks.js';

export interface DatasetEncoderOptions {
  /** Width of one feature vector (512 for the original's ResNet-18 features). */
  featureDim?: number;
  /** Feature vectors per class (the original's num_sample = 20). */
  numSample?: number;
  /** Output width of both pools (the original's nz = 56). */
  dim?: number;
  numHeads?: number;
  rng?: Rng;
}

/**
 * The two-level dataset encoder: every class's `numSample` feature vectors are pooled by
 * `intra_setpool` into a class prototype, and the prototypes by `inter_setpool` into one vector per
 * dataset. Input rows are class-major (rows k*numSample .. (k+1)*numSample-1 belong to class k).
 *
 * Datasets with different class counts share one batch: pad each to the largest count and pass
 * `classCounts`; padded classes are masked out of the inter-class attention, so the result equals
 * encoding each dataset alone.
 */
export class DatasetEncoder extends Module {
  readonly featureDim: number;
  readonly numSample: number;
  readonly dim: number;
  readonly intra_setpool: SetPool;
  readonly inter_setpool: SetPool;

  constructor(options: DatasetEncoderOptions = {}) {
    super();
    this.featureDim = options.featureDim ?? 512;
    this.numSample = options.numSample ?? 20;
    this.dim = options.dim ?? 56;
    const numHeads = options.numHeads ?? 4;
    this.intra_setpool = this.addModule(
      'intra_setpool',
      new SetPool(this.featureDim, 1, this.dim, { dimHidden: this.dim, numHeads, mode: 'sabPF', rng: options.rng }),
    );
    this.inter_setpool = this.addModule(
      'inter_setpool',
      new SetPool(this.dim, 1, this.dim, { dimHidden: this.dim, numHeads, mode: 'sabPF', rng: options.rng }),
    );
  }

  /** Class prototypes: X [B, C*numSample, F] -> [B, C, dim]. */
  classPrototypes(X: tf.Tensor3D): tf.Tensor3D {
    const [B, rows, F] = X.shape;
    const ns = this.numSample;
    if (F !== this.featureDim || rows % ns !== 0 || rows === 0) {
      throw new ShapeError(`dataset features (rows must be classes x ${ns} samples, class-major)`, [B, Math.max(1, Math.round(rows / ns)) * ns, this.featureDim], X.shape);
    }
    const C = rows / ns;
    const mab = this.intra_setpool.firstSab();
    return tf.tidy(() => {
      // the features are data: projected by one op that keeps no copy of them for the gradient
      let protos: tf.Tensor3D;
      if (mab) {
        const { Q, K, V } = mab.projectData(X);
        protos = this.intra_setpool.forwardFromProjections(Q, K, V, B * C, ns);
      } else {
        protos = this.intra_setpool.forward(X.reshape([B * C, ns, F]) as tf.Tensor3D);
      }
      return protos.reshape([B, C, this.dim]) as tf.Tensor3D;
    });
  }

  /**
   * X [B, C*numSample, F] (class-major) -> [B, dim]. `classCounts[b]` (optional) is how many of the
   * C class blocks of dataset b are real; the rest are padding.
   */
  forward(X: tf.Tensor3D, classCounts?: readonly number[]): tf.Tensor2D {
    const [B, rows] = X.shape;
    const C = rows / this.numSample;
    const mask = classMask(B, C, classCounts);
    return tf.tidy(() => {
      const protos = this.classPrototypes(X);
      const maskT = mask ? tf.tensor2d(mask, [B, C]) : null;
      return this.inter_setpool.forward(protos, maskT).reshape([B, this.dim]) as tf.Tensor2D;
    });
  }

  /**
   * Project a dataset's feature store once: `features` [P, F] holds every class's vectors,
   * class-major, `classSizes[c]` of them for class c (each at least numSample).
   */
  preparePool(features: tf.Tensor2D, classSizes: readonly number[]): PreparedPool {
    const P = classSizes.reduce((a, b) => a + b, 0);
    if (features.shape[0] !== P || features.shape[1] !== this.featureDim) throw new ShapeError('feature pool', [P, this.featureDim], features.shape);
    const start: number[] = [];
    let o = 0;
    classSizes.forEach((c, k) => {
      if (!Number.isInteger(c) || c < this.numSample) throw new RangeError(`class ${k} has ${c} feature vectors; a sample needs ${this.numSample}`);
      start.push(o);
      o += c;
    });
    const mab = this.intra_setpool.firstSab();
    if (!mab) throw new Error('preparePool needs a SAB as the first intra-class block');
    const { Q, K, V } = tf.tidy(() => mab.project(features, features));
    return new PreparedPool(Q, K, V, [...classSizes], start);
  }

  /**
   * Draw `count` dataset samples from a pool as the original loader does: per class, numSample
   * distinct rows uniformly at random (re-drawn for every sample). Returns the pool row of every
   * sample row, [count * C * numSample], class-major within each sample.
   */
  sampleRows(pool: PreparedPool, count: number, rng: Rng): Int32Array {
    const ns = this.numSample;
    const C = pool.numClasses;
    const rows = new Int32Array(count * C * ns);
    let o = 0;
    for (let b = 0; b < count; b++) {
      for (let c = 0; c < C; c++) {
        for (const r of rng.sampleWithoutReplacement(pool.classSizes[c], ns)) rows[o++] = pool.classStart[c] + r;
      }
    }
    return rows;
  }

  /** Encode samples given as pool rows (from sampleRows) -> [count, dim]; equals forward on the gathered features. */
  encodePoolRows(pool: PreparedPool, rows: Int32Array): tf.Tensor2D {
    const ns = this.numSample;
    const C = pool.numClasses;
    const count = rows.length / (C * ns);
    if (!Number.isInteger(count)) throw new ShapeError('pool rows', [Math.ceil(count) * C * ns], [rows.length]);
    return tf.tidy(() => {
      for (const r of rows) if (r < 0 || r >= pool.Q.shape[0]) throw new RangeError(`pool row ${r} outside 0..${pool.Q.shape[0] - 1}`);
      const protos = this.intra_setpool
        .forwardFromProjections(pool.gather('Q', rows), pool.gather('K', rows), pool.gather('V', rows), count * C, ns)
        .reshape([count, C, this.dim]) as tf.Tensor3D;
      return this.inter_setpool.forward(protos).reshape([count, this.dim]) as tf.Tensor2D;
    });
  }
}

/**
 * A dataset's feature store projected once through the first SAB of `intra_setpool`: every sample
 * (numSample rows per class, drawn from the class's rows) then costs a row gather instead of the
 * input-width matmuls, which dominate when many samples of one dataset are encoded (generation).
 */
export class PreparedPool {
  /** The projections as host arrays: gathering rows in JS beats the wasm GatherV2 kernel by far. */
  readonly host: { Q: Float32Array; K: Float32Array; V: Float32Array };
  constructor(
    readonly Q: tf.Tensor2D,
    readonly K: tf.Tensor2D,
    readonly V: tf.Tensor2D,
    /** Rows of class c are classStart[c] .. classStart[c] + classSizes[c] - 1. */
    readonly classSizes: readonly number[],
    readonly classStart: readonly number[],
  ) {
    this.host = { Q: Q.dataSync() as Float32Array, K: K.dataSync() as Float32Array, V: V.dataSync() as Float32Array };
  }

  /** Rows `rows` of one projection as a [rows.length, width] tensor. */
  gather(which: 'Q' | 'K' | 'V', rows: Int32Array): tf.Tensor2D {
    const src = this.host[which];
    const w = this[which].shape[1];
    const out = new Float32Array(rows.length * w);
    for (let i = 0; i < rows.length; i++) {
      const o = i * w;
      const r = rows[i] * w;
      for (let j = 0; j < w; j++) out[o + j] = src[r + j];
    }
    return tf.tensor2d(out, [rows.length, w]);
  }

  get numClasses(): number {
    return this.classSizes.length;
  }

  dispose(): void {
    tf.dispose([this.Q, this.K, this.V]);
  }
}

/** The [B, C] 0/1 mask of real classes, or null when every dataset has all C classes. */
export function classMask(B: number, C: number, classCounts?: readonly number[]): Float32Array | null {
  if (!classCounts) return null;
  if (classCounts.length !== B) throw new ShapeError('classCounts', [B], [classCounts.length]);
  let full = true;
  const mask = new Float32Array(B * C);
  classCounts.forEach((c, b) => {
    if (!Number.isInteger(c) || c < 1 || c > C) {
      throw new RangeError(`classCounts[${b}] = ${c}: must be an integer in 1..${C} (the padded class count)`);
    }
    if (c !== C) full = false;
    mask.fill(1, b * C, b * C + c);
  });
  return full ? null : mask;
}

/**
 * Pack datasets with different class counts into one zero-padded batch for DatasetEncoder.forward:
 * each entry is a class-major [numClasses*numSample, featureDim] Float32Array.
 */
export function packDatasets(
  datasets: ReadonlyArray<{ features: Float32Array; numClasses: number }>,
  numSample: number,
  featureDim: number,
): { X: tf.Tensor3D; classCounts: number[] } {
  const maxC = Math.max(...datasets.map((d) => d.numClasses));
  const rowLen = numSample * featureDim;
  const out = new Float32Array(datasets.length * maxC * rowLen);
  datasets.forEach((d, b) => {
    if (d.features.length !== d.numClasses * rowLen) {
      throw new ShapeError(`dataset ${b} features`, [d.numClasses * numSample, featureDim], [d.features.length / featureDim, featureDim]);
    }
    out.set(d.features, b * maxC * rowLen);
  });
  return { X: tf.tensor3d(out, [datasets.length, maxC * numSample, featureDim]), classCounts: datasets.map((d) => d.numClasses) };
}
