import * as tf from '@tensorflow/tfjs';
import { Rng, type ArchDag } from '@metad2a/core';
import { Linear, Module, ReLU, Sequential, type StateDict } from '@metad2a/nn';
import { DatasetEncoder, type PreparedPool } from '@metad2a/set-encoder';
import { DagDecoder, type DecodeOptions } from './decoder.js';
import { DagEncoder } from './encoder.js';
import { packGraphs, type GraphBatch, type ModelSpace } from './graph-batch.js';

export interface GeneratorOptions {
  /** GRU hidden size (56 in the original). */
  hs?: number;
  /** Latent size (56 in the original). */
  nz?: number;
  /** Feature vectors per class (20). */
  numSample?: number;
  /** Width of one feature vector (512 for the original's ResNet-18; any width works). */
  featureDim?: number;
  numHeads?: number;
  rng?: Rng;
}

export interface LossOptions {
  /** KL weight (0.005 in the original). */
  beta?: number;
  /** Train mode: z = mu + 0.01 * eps * std; eval mode: z = mu. */
  train?: boolean;
  /** Source of eps in train mode. */
  rng?: Rng;
  /** Real class count per dataset when X is padded (see DatasetEncoder). */
  classCounts?: readonly number[];
}

export type GeneratorLoss = {
  /** recon + beta * kld. */
  loss: tf.Scalar;
  recon: tf.Scalar;
  kld: tf.Scalar;
};

/** D-VAE's latent noise scale, kept by MetaD2A. */
export const LATENT_NOISE_SCALE = 0.01;

/**
 * MetaD2A's generator: two-level set encoder -> v; mu = fc1(v), logvar = fc2(v); z -> D-VAE decoder.
 * Holds every module of the original's GeneratorModel under its PyTorch name and in its order, the
 * unused ones included (grue_forward/backward, enc_g_mu/var, the gate and mapper pairs, hv_unify, hg_unify, set_fc), so the original
 * checkpoint loads strictly (304,200 parameters for NB201). The graph encoder (graphEncode) is the
 * original's graph_encode with enc_g_mu / enc_g_var; the generator's search path never calls it.
 * Modules the loss never uses are frozen (trainable = false); they still load and save.
 */
export class Generator extends Module {
  readonly hs: number;
  readonly nz: number;
  readonly numSample: number;
  readonly featureDim: number;
  readonly datasetEncoder: DatasetEncoder;
  readonly graphEncoder: DagEncoder;
  readonly decoder: DagDecoder;
  readonly enc_g_mu: Linear;
  readonly enc_g_var: Linear;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly set_fc: Sequential;

  constructor(
    readonly space: ModelSpace,
    options: GeneratorOptions = {},
  ) {
    super();
    this.hs = options.hs ?? 56;
    this.nz = options.nz ?? 56;
    this.numSample = options.numSample ?? 20;
    this.featureDim = options.featureDim ?? 512;
    const rng = options.rng;
    const hs = this.hs;
    const nz = this.nz;
    this.graphEncoder = new DagEncoder(space, hs, { rng });
    this.decoder = new DagDecoder(space, hs, nz, { rng });
    // the dataset embedding v has width nz and feeds fc1/fc2 (Linear(gs = hs -> nz)): needs hs == nz,
    // as in every configuration of the original
    this.datasetEncoder = new DatasetEncoder({ featureDim: this.featureDim, numSample: this.numSample, dim: nz, numHeads: options.numHeads, rng });
    const e = this.graphEncoder;
    const d = this.decoder;
    this.addModule('grue_forward', e.grue_forward);
    this.addModule('grue_backward', e.grue_backward);
    this.enc_g_mu = this.addModule('enc_g_mu', new Linear(hs, nz, { rng }));
    this.enc_g_var = this.addModule('enc_g_var', new Linear(hs, nz, { rng }));
    this.fc1 = this.addModule('fc1', new Linear(hs, nz, { rng }));
    this.fc2 = this.addModule('fc2', new Linear(hs, nz, { rng }));
    this.addModule('grud', d.grud);
    this.addModule('fc3', d.fc3);
    this.addModule('add_vertex', d.add_vertex);
    this.addModule('add_edge', d.add_edge);
    this.addModule('decoding_gate', d.decoding_gate);
    this.addModule('decoding_mapper', d.decoding_mapper);
    this.addModule('gate_forward', e.gate_forward);
    this.addModule('gate_backward', e.gate_backward);
    this.addModule('mapper_forward', e.mapper_forward);
    this.addModule('mapper_backward', e.mapper_backward);
    this.addModule('hv_unify', e.hv_unify);
    this.addModule('hg_unify', e.hg_unify);
    this.addModule('intra_setpool', this.datasetEncoder.intra_setpool);
    this.addModule('inter_setpool', this.datasetEncoder.inter_setpool);
    this.set_fc = this.addModule('set_fc', new Sequential(new Linear(this.featureDim, nz, { rng }), new ReLU()));
    // The original's loss never reaches these (PyTorch's Adam skips their None gradients): frozen,
    // so trainableParameters() is exactly what a training step updates.
    for (const m of [e.grue_forward, e.grue_backward, this.enc_g_mu, this.enc_g_var, e.gate_forward, e.gate_backward, e.mapper_forward, e.mapper_backward, e.hv_unify, e.hg_unify, this.set_fc]) {
      for (const v of m.parameters()) v.trainable = false;
    }
  }

  /** Datasets X [B, C*numSample, F] (class-major) -> mu, logvar [B, nz]. */
  encodeDatasets(X: tf.Tensor3D, classCounts?: readonly number[]): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    return tf.tidy(() => {
      const v = this.datasetEncoder.forward(X, classCounts);
      return { mu: this.fc1.forward(v) as tf.Tensor2D, logvar: this.fc2.forward(v) as tf.Tensor2D };
    });
  }

  /** The original's graph_encode: bidirectional encoder -> enc_g_mu / enc_g_var. */
  graphEncode(graphs: readonly ArchDag[] | GraphBatch): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    return tf.tidy(() => {
      const hg = this.graphEncoder.graphState(graphs);
      return { mu: this.enc_g_mu.forward(hg) as tf.Tensor2D, logvar: this.enc_g_var.forward(hg) as tf.Tensor2D };
    });
  }

  /** z = mu + 0.01 * eps * exp(logvar / 2) in train mode, mu otherwise. */
  reparameterize(mu: tf.Tensor2D, logvar: tf.Tensor2D, options: { train?: boolean; rng?: Rng } = {}): tf.Tensor2D {
    if (!options.train) return mu.clone();
    const rng = options.rng ?? new Rng(Date.now() >>> 0);
    return tf.tidy(() => {
      const eps = tf.tensor2d(rng.normalArray(mu.size), mu.shape);
      return mu.add(eps.mul(LATENT_NOISE_SCALE).mul(tf.exp(logvar.mul(0.5)))) as tf.Tensor2D;
    });
  }

  /** The original's VAE loss from given mu/logvar: recon (teacher forcing, sums) + beta * KL. */
  lossFromLatent(mu: tf.Tensor2D, logvar: tf.Tensor2D, graphs: readonly ArchDag[] | GraphBatch, options: LossOptions = {}): GeneratorLoss {
    const beta = options.beta ?? 0.005;
    return tf.tidy(() => {
      const z = this.reparameterize(mu, logvar, options);
      const recon = this.decoder.reconstructionLoss(z, graphs);
      const kld = tf.sum(tf.scalar(1).add(logvar).sub(mu.square()).sub(tf.exp(logvar))).mul(-0.5) as tf.Scalar;
      return { loss: recon.add(kld.mul(beta)) as tf.Scalar, recon, kld };
    });
  }

  /** Loss of decoding the true graphs from the datasets X (one graph per dataset). Differentiable. */
  loss(X: tf.Tensor3D, graphs: readonly ArchDag[] | GraphBatch, options: LossOptions = {}): GeneratorLoss {
    const batch = Array.isArray(graphs) ? packGraphs(graphs as ArchDag[], this.space) : (graphs as GraphBatch);
    return tf.tidy(() => {
      const { mu, logvar } = this.encodeDatasets(X, options.classCounts);
      return this.lossFromLatent(mu, logvar, batch, options);
    });
  }

  /** Decode latents (z, or mu in eval mode) into graphs; mode 'sample' (default) or 'argmax'. */
  sample(z: tf.Tensor2D, options: DecodeOptions = {}): ArchDag[] {
    return this.decoder.decode(z, options);
  }

  /** Encode datasets and decode one graph per dataset from z = mu (the original's meta-test). */
  generate(X: tf.Tensor3D, options: DecodeOptions & { classCounts?: readonly number[] } = {}): ArchDag[] {
    const { mu, logvar } = this.encodeDatasets(X, options.classCounts);
    try {
      return this.decoder.decode(mu, options);
    } finally {
      mu.dispose();
      logvar.dispose();
    }
  }

  /**
   * Project a dataset's feature store ([P, F], class-major, classSizes[c] vectors of class c) once,
   * so that generateFromPool draws fresh samples at the cost of a row gather.
   */
  preparePool(features: tf.Tensor2D, classSizes: readonly number[]): PreparedPool {
    return this.datasetEncoder.preparePool(features, classSizes);
  }

  /**
   * The original's meta-test generation for `count` graphs: every graph gets its own fresh dataset
   * sample (numSample vectors per class drawn from the pool), z = mu, then decoding.
   */
  generateFromPool(pool: PreparedPool, count: number, options: DecodeOptions & { rng: Rng }): ArchDag[] {
    const rows = this.datasetEncoder.sampleRows(pool, count, options.rng);
    const mu = tf.tidy(() => this.fc1.forward(this.datasetEncoder.encodePoolRows(pool, rows)) as tf.Tensor2D);
    try {
      return this.decoder.decode(mu, options);
    } finally {
      mu.dispose();
    }
  }

  /** Load the original's state dict (e.g. importTorchStateDict of generator_ckpt_400.pt); strict by default. */
  loadOriginal(state: StateDict, source?: string): void {
    const { unexpected } = this.loadStateDict(state, { strict: true, source });
    if (unexpected.length) throw new Error(`loading generator${source ? ` from ${source}` : ''}: unexpected parameters ${unexpected.join(', ')}`);
  }
}
