import * as tf from '@tensorflow/tfjs';
import { InputError, ShapeError, type ArchDag, type Rng } from '@metad2a/core';
import { Linear, Module, ReLU, Sequential, Tanh, fusedOps, type StateDict } from '@metad2a/nn';
import { DatasetEncoder } from '@metad2a/set-encoder';
import { DagEncoder, packGraphs, type GraphBatch, type ModelSpace } from '@metad2a/dag-vae';

export interface PredictorOptions {
  /** Graph-encoder hidden size (512 in the original). */
  hs?: number;
  /** Dataset and graph embedding size (56). */
  nz?: number;
  /** Feature vectors per class (20). */
  numSample?: number;
  /** Width of one feature vector (512 for the original; any width works). */
  featureDim?: number;
  numHeads?: number;
  rng?: Rng;
}

/**
 * MetaD2A's meta-performance predictor: D = two-level set encoding of the dataset (nz), G = fc1 of
 * the bidirectional D-VAE graph state (hs -> nz), score = pred_fc([D ; G]) with
 * pred_fc = Linear(2nz -> hs) -> Tanh -> Linear(hs -> 1), on the normalised target scale
 * ((acc - mean) / std) / 100. Parameter names and order are the original PredictorModel's; fc2,
 * hv_unify and set_fc exist (checkpoints carry them) but are unused.
 */
export class Predictor extends Module {
  readonly hs: number;
  readonly nz: number;
  readonly numSample: number;
  readonly featureDim: number;
  readonly datasetEncoder: DatasetEncoder;
  readonly graphEncoder: DagEncoder;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly set_fc: Sequential;
  readonly pred_fc: Sequential;

  constructor(
    readonly space: ModelSpace,
    options: PredictorOptions = {},
  ) {
    super();
    this.hs = options.hs ?? 512;
    this.nz = options.nz ?? 56;
    this.numSample = options.numSample ?? 20;
    this.featureDim = options.featureDim ?? 512;
    const { hs, nz } = this;
    const rng = options.rng;
    const e = new DagEncoder(space, hs, { rng });
    this.graphEncoder = e;
    this.datasetEncoder = new DatasetEncoder({ featureDim: this.featureDim, numSample: this.numSample, dim: nz, numHeads: options.numHeads, rng });
    this.addModule('grue_forward', e.grue_forward);
    this.addModule('grue_backward', e.grue_backward);
    this.fc1 = this.addModule('fc1', new Linear(hs, nz, { rng }));
    this.fc2 = this.addModule('fc2', new Linear(hs, nz, { rng }));
    this.addModule('gate_forward', e.gate_forward);
    this.addModule('gate_backward', e.gate_backward);
    this.addModule('mapper_forward', e.mapper_forward);
    this.addModule('mapper_backward', e.mapper_backward);
    this.addModule('hv_unify', e.hv_unify);
    this.addModule('hg_unify', e.hg_unify);
    this.addModule('intra_setpool', this.datasetEncoder.intra_setpool);
    this.addModule('inter_setpool', this.datasetEncoder.inter_setpool);
    this.set_fc = this.addModule('set_fc', new Sequential(new Linear(this.featureDim, nz, { rng }), new ReLU()));
    this.pred_fc = this.addModule('pred_fc', new Sequential(new Linear(2 * nz, hs, { rng }), new Tanh(), new Linear(hs, 1, { rng })));
    // unused by the original's forward: frozen, so trainableParameters() is what a step updates
    for (const m of [this.fc2, e.hv_unify, this.set_fc]) for (const v of m.parameters()) v.trainable = false;
  }

  /** Datasets X [B, C*numSample, F] (class-major; padded with classCounts) -> D [B, nz]. */
  encodeDatasets(X: tf.Tensor3D, classCounts?: readonly number[]): tf.Tensor2D {
    return this.datasetEncoder.forward(X, classCounts);
  }

  /**
   * Graphs -> G = fc1(graph state) [n, nz]. `dedupe` computes every distinct vertex state once
   * (inference only: no gradients flow through it).
   */
  encodeGraphs(graphs: readonly ArchDag[] | GraphBatch, options: { dedupe?: boolean } = {}): tf.Tensor2D {
    return tf.tidy(() => this.fc1.forward(this.graphEncoder.graphState(graphs, options)) as tf.Tensor2D);
  }

  /** pred_fc([D ; G]) for aligned rows D [N, nz], G [N, nz] -> [N, 1]. */
  head(D: tf.Tensor2D, G: tf.Tensor2D): tf.Tensor2D {
    if (D.shape[0] !== G.shape[0]) throw new ShapeError('dataset and graph embeddings', [G.shape[0], this.nz], D.shape);
    return tf.tidy(() => this.pred_fc.forward(tf.concat([D, G], 1)) as tf.Tensor2D);
  }

  /** Score of every (graph, dataset) pair: [nG, nD], without repeating either encoding. */
  headAllPairs(D: tf.Tensor2D, G: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const l0 = this.pred_fc.layers[0] as Linear;
      const l2 = this.pred_fc.layers[2] as Linear;
      const { nz, hs } = this;
      const dPart = tf.matMul(D, l0.weight.slice([0, 0], [hs, nz]), false, true); // [nD, hs]
      const gPart = tf.matMul(G, l0.weight.slice([0, nz], [hs, nz]), false, true).add(l0.bias!); // [nG, hs]
      const nG = G.shape[0];
      const nD = D.shape[0];
      // tanh(x) = 2 sigmoid(2x) - 1: wasm's Tanh is ~3x slower per element than its Sigmoid, and this
      // is the largest elementwise op of ranking (nG * nD * hs); the difference is float32 rounding
      const pre = gPart.reshape([nG, 1, hs]).add(dPart.reshape([1, nD, hs]));
      const h = tf.sigmoid(pre.mul(2)).mul(2).sub(1);
      return tf.matMul(h.reshape([nG * nD, hs]), l2.weight, false, true).add(l2.bias!).reshape([nG, nD]) as tf.Tensor2D;
    });
  }

  /** The original's forward: dataset b with graph b -> [B, 1] (normalised scale). */
  predict(X: tf.Tensor3D, graphs: readonly ArchDag[] | GraphBatch, classCounts?: readonly number[]): tf.Tensor2D {
    const n = Array.isArray(graphs) ? graphs.length : (graphs as GraphBatch).B;
    if (n !== X.shape[0]) throw new InputError({ field: 'graphs' }, `${n} graphs for ${X.shape[0]} datasets`, 'predict pairs dataset b with graph b; use scoreAll for every pair');
    return tf.tidy(() => this.head(this.encodeDatasets(X, classCounts), this.encodeGraphs(graphs)));
  }

  /**
   * Ranking scores: every graph against every dataset sample in X, averaged over the samples (the
   * original scores each candidate with 10 fresh samples of the dataset and takes the mean).
   */
  scoreAll(X: tf.Tensor3D, graphs: readonly ArchDag[] | GraphBatch, classCounts?: readonly number[]): Float32Array {
    const addon = fusedOps();
    if (addon) {
      // the head's first layer split into its dataset and graph halves (each computed once), then
      // tanh, second layer and mean over the samples natively for every pair (no [nG, nD, hs] tensor)
      const l0 = this.pred_fc.layers[0] as Linear;
      const l2 = this.pred_fc.layers[2] as Linear;
      const { nz, hs } = this;
      const [dPart, gPart] = tf.tidy(() => {
        const D = this.encodeDatasets(X, classCounts);
        const G = this.encodeGraphs(graphs, { dedupe: true });
        return [tf.matMul(D, l0.weight.slice([0, 0], [hs, nz]), false, true), tf.matMul(G, l0.weight.slice([0, nz], [hs, nz]), false, true).add(l0.bias!)];
      });
      const nG = gPart.shape[0];
      const out = new Float32Array(nG);
      addon.pairTanhMean(gPart.dataSync() as Float32Array, dPart.dataSync() as Float32Array, l2.weight.dataSync() as Float32Array, out, nG, dPart.shape[0], hs);
      const b2 = l2.bias!.dataSync()[0];
      for (let i = 0; i < nG; i++) out[i] += b2;
      tf.dispose([dPart, gPart]);
      return out;
    }
    const s = tf.tidy(() => this.headAllPairs(this.encodeDatasets(X, classCounts), this.encodeGraphs(graphs, { dedupe: true })).mean(1));
    const out = s.dataSync() as Float32Array;
    s.dispose();
    return out;
  }

  /** The original's training loss: sum over the batch of (prediction - target)^2, targets normalised. */
  loss(X: tf.Tensor3D, graphs: readonly ArchDag[] | GraphBatch, targets: ArrayLike<number>, classCounts?: readonly number[]): tf.Scalar {
    if (targets.length !== X.shape[0]) throw new ShapeError('targets', [X.shape[0]], [targets.length]);
    return tf.tidy(() => {
      const y = tf.tensor2d(Float32Array.from(targets), [targets.length, 1]);
      return this.predict(X, graphs, classCounts).sub(y).square().sum() as tf.Scalar;
    });
  }

  /** Load a state dict with the original's names (strict: every parameter, nothing extra). */
  loadOriginal(state: StateDict, source?: string): void {
    const { unexpected } = this.loadStateDict(state, { strict: true, source });
    if (unexpected.length) throw new Error(`loading predictor${source ? ` from ${source}` : ''}: unexpected parameters ${unexpected.join(', ')}`);
  }

  /** Graphs packed once for repeated use (ranking many datasets against the same candidates). */
  pack(graphs: readonly ArchDag[]): GraphBatch {
    return packGraphs(graphs, this.space);
  }
}

/** Training-split statistics of the accuracies (mean and unbiased std, as torch.std). */
export function targetStats(accuracies: ArrayLike<number>): { mean: number; std: number } {
  const n = accuracies.length;
  if (n < 2) throw new RangeError(`target statistics need at least 2 accuracies, got ${n}`);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += accuracies[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (accuracies[i] - mean) ** 2;
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

/** The original's regression target: ((acc - mean) / std) / 100. */
export function normalizeTarget(acc: number, stats: { mean: number; std: number }): number {
  return (acc - stats.mean) / stats.std / 100;
}

/** Inverse of normalizeTarget: a prediction back on the accuracy scale (percent). */
export function denormalize(y: number, stats: { mean: number; std: number }): number {
  return y * 100 * stats.std + stats.mean;
}
