import * as tf from '@tensorflow/tfjs';
import { ConfigError, ShapeError, type Rng } from '@metad2a/core';
import { LayerNorm, Linear, Module, attentionHeads, defaultRng, mergeHeads, multiLinear, residualReluLinear, splitHeads, uniformArray, xavierBound } from '@metad2a/nn';

/**
 * Additive attention bias for padded set elements: large enough that exp() underflows to exactly 0
 * in float32 after softmax's max subtraction, finite so gradients stay NaN-free.
 */
const MASK_BIAS = -1e9;

/** A [N, m] 0/1 mask of valid keys turned into the [N, 1, 1, m]-broadcastable additive bias. */
export function keyMaskBias(mask: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, m] = mask.shape;
    return tf.scalar(1).sub(mask).mul(MASK_BIAS).reshape([n, 1, 1, m]) as tf.Tensor4D;
  });
}

/**
 * Multihead attention block of the Set Transformer (juho-lee/set_transformer, as in MetaD2A):
 *   Q = fc_q(Qin), K = fc_k(Kin), V = fc_v(Kin); heads are contiguous chunks of dV/h features;
 *   O_j = Q_j + softmax(Q_j K_j^T / sqrt(dV)) V_j   (scale by the FULL width dV, residual adds the projected Q)
 *   O = [ln0](O);  O = O + relu(fc_o(O));  O = [ln1](O)
 * Parameter names and order follow the PyTorch module (fc_q, fc_k, fc_v, [ln0, ln1], fc_o).
 */
export class MAB extends Module {
  readonly fc_q: Linear;
  readonly fc_k: Linear;
  readonly fc_v: Linear;
  readonly ln0: LayerNorm | null;
  readonly ln1: LayerNorm | null;
  readonly fc_o: Linear;

  constructor(
    readonly dimQ: number,
    readonly dimK: number,
    readonly dimV: number,
    readonly numHeads: number,
    options: { ln?: boolean; rng?: Rng } = {},
  ) {
    super();
    if (dimV % numHeads !== 0) throw new ConfigError('numHeads', `${numHeads} heads do not divide the width ${dimV}`);
    const rng = options.rng;
    this.fc_q = this.addModule('fc_q', new Linear(dimQ, dimV, { rng }));
    this.fc_k = this.addModule('fc_k', new Linear(dimK, dimV, { rng }));
    this.fc_v = this.addModule('fc_v', new Linear(dimK, dimV, { rng }));
    this.ln0 = options.ln ? this.addModule('ln0', new LayerNorm(dimV)) : null;
    this.ln1 = options.ln ? this.addModule('ln1', new LayerNorm(dimV)) : null;
    this.fc_o = this.addModule('fc_o', new Linear(dimV, dimV, { rng }));
  }

  /**
   * Qin [N, n, dQ], Kin [N, m, dK], optional keyMask [N, m] (1 = real element, 0 = padding) -> [N, n, dV].
   */
  forward(Qin: tf.Tensor3D, Kin: tf.Tensor3D, keyMask?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [N, n] = Qin.shape;
      const m = Kin.shape[1];
      // self-attention: one flat view (under a gradient tape every reshape keeps a copy of its input)
      const Q2 = Qin.reshape([N * n, this.dimQ]) as tf.Tensor2D;
      const K2 = Kin === Qin ? Q2 : (Kin.reshape([N * m, this.dimK]) as tf.Tensor2D);
      const { Q, K, V } = this.project(Q2, K2);
      return this.attend(Q, K, V, N, n, m, keyMask);
    });
  }

  /**
   * The three input projections on flat rows: Q = Qin Wq^T + bq, K = (Kin Wk^T + bk) / sqrt(dV)
   * (the attention scale folded in), V = Kin Wv^T + bv, as one op where the fused host ops run
   * (multiLinear: three gemms, no bias-gradient reductions on wasm). Row-wise, so projecting a pool
   * of feature vectors once and gathering rows gives the projections of any sample of it.
   */
  project(Qin: tf.Tensor2D, Kin: tf.Tensor2D): { Q: tf.Tensor2D; K: tf.Tensor2D; V: tf.Tensor2D } {
    const scale = 1 / Math.sqrt(this.dimV);
    if (Qin === Kin) {
      const [Q, K, V] = multiLinear(Qin, [this.fc_q, this.fc_k, this.fc_v], { scales: [1, scale, 1] });
      return { Q, K, V };
    }
    const [Q] = multiLinear(Qin, [this.fc_q]);
    const [K, V] = multiLinear(Kin, [this.fc_k, this.fc_v], { scales: [scale, 1] });
    return { Q, K, V };
  }

  /**
   * project() for self-attention over *data* (an input that never needs a gradient, like the
   * dataset's feature vectors): X [..., dIn] is read as rows, and the backward pass computes only
   * the weight gradients (X^T dY), no gradient for X. The op keeps a reference to X (not a copy)
   * for the backward pass, so X may be disposed by its owner before the gradients are computed.
   */
  projectData(X: tf.Tensor): { Q: tf.Tensor2D; K: tf.Tensor2D; V: tf.Tensor2D } {
    const dIn = this.dimK;
    const R = X.size / dIn;
    if (this.dimQ !== dIn || X.shape[X.rank - 1] !== dIn || !Number.isInteger(R)) throw new ShapeError('MAB data rows', [R, dIn], X.shape);
    const [Q, K, V] = multiLinear(X, [this.fc_q, this.fc_k, this.fc_v], { scales: [1, 1 / Math.sqrt(this.dimV), 1], data: true });
    return { Q, K, V };
  }

  /** Attention and output layer from projected rows Q [N*n, dV], K and V [N*m, dV] -> [N, n, dV]. */
  attend(Q: tf.Tensor2D, K: tf.Tensor2D, V: tf.Tensor2D, N: number, n: number, m: number, keyMask?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const dV = this.dimV;
      const h = this.numHeads;
      const d = dV / h;
      // [N*rows, dV] -> [N*h, rows, d]: head j = features j*d .. (j+1)*d-1
      const heads = (t: tf.Tensor, rows: number) => splitHeads(t, N, rows, h, d);
      const Oh = attentionHeads(heads(Q, n), heads(K, m), heads(V, m), h, keyMask);
      const O = mergeHeads(Oh, N, n, h, d);
      return this.output(O).reshape([N, n, dV]) as tf.Tensor3D;
    });
  }

  /** [ln0] -> O + relu(fc_o(O)) -> [ln1] on attention outputs [rows, dV]. */
  output(O: tf.Tensor2D): tf.Tensor2D {
    let o = O;
    if (this.ln0) o = this.ln0.forward(o) as tf.Tensor2D;
    o = residualReluLinear(o, this.fc_o);
    if (this.ln1) o = this.ln1.forward(o) as tf.Tensor2D;
    return o;
  }

  /**
   * MAB(Q, K) for queries shared by every set (PMA's learned seeds), without projecting the keys:
   * a seed's head-j score of element x is x . (Wk_j^T q_j) / sqrt(dV) plus a term constant over the
   * elements (q_j . bk_j, which softmax cancels), and since attention rows sum to 1,
   * sum_k a_k (Wv x_k + bv) = Wv (sum_k a_k x_k) + bv. Same function, a fraction of the work when
   * the sets are many and the seeds few.
   */
  attendSharedQueries(Qin: tf.Tensor2D, X: tf.Tensor3D, keyMask?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const [N, m, dK] = X.shape;
      const s = Qin.shape[0];
      const dV = this.dimV;
      const h = this.numHeads;
      const d = dV / h;
      const q = tf.matMul(Qin, this.fc_q.weight, false, true).add(this.fc_q.bias!); // [s, dV]
      const headMask = tf.tensor2d(Float32Array.from({ length: h * dV }, (_, i) => (Math.floor((i % dV) / d) === Math.floor(i / dV) ? 1 : 0)), [h, dV]);
      const qBlocks = q.reshape([s, 1, dV]).mul(headMask.reshape([1, h, dV])).reshape([s * h, dV]);
      const U = tf.matMul(qBlocks, this.fc_k.weight).mul(1 / Math.sqrt(dV)); // [s*h, dK]
      let S = tf.matMul(X.reshape([N * m, dK]), U, false, true).reshape([N, m, s * h]).transpose([0, 2, 1]);
      if (keyMask) S = S.add(keyMaskBias(keyMask).reshape([N, 1, m]));
      const A = tf.softmax(S, -1); // [N, s*h, m]
      const Z = tf.matMul(A, X).reshape([N * s * h, dK]);
      const AV = tf.matMul(Z, this.fc_v.weight, false, true).add(this.fc_v.bias!).reshape([N, s, h, dV]);
      const O = AV.mul(headMask.reshape([1, 1, h, dV])).sum(2).add(q).reshape([N * s, dV]) as tf.Tensor2D;
      return this.output(O).reshape([N, s, dV]) as tf.Tensor3D;
    });
  }
}

/** SAB(X) = MAB(X, X). */
export class SAB extends Module {
  readonly mab: MAB;
  constructor(dimIn: number, dimOut: number, numHeads: number, options: { ln?: boolean; rng?: Rng } = {}) {
    super();
    this.mab = this.addModule('mab', new MAB(dimIn, dimIn, dimOut, numHeads, options));
  }
  forward(X: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D {
    return this.mab.forward(X, X, mask);
  }
}

function xavierParam(shape: number[], rng: Rng): Float32Array {
  // torch's fan computation for a [1, k, dim] parameter: fan_in = k*dim, fan_out = dim
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  const fanIn = shape[1] * receptive;
  const fanOut = shape[0] * receptive;
  return uniformArray(
    shape.reduce((a, b) => a * b, 1),
    xavierBound(fanIn, fanOut),
    rng,
  );
}

/** ISAB(X) = MAB(X, MAB(I, X)) with `numInds` learned inducing points I [1, numInds, dimOut]. */
export class ISAB extends Module {
  readonly I: tf.Variable;
  readonly mab0: MAB;
  readonly mab1: MAB;
  constructor(dimIn: number, dimOut: number, numHeads: number, readonly numInds: number, options: { ln?: boolean; rng?: Rng } = {}) {
    super();
    const rng = options.rng ?? defaultRng();
    this.I = this.addParameter('I', [1, numInds, dimOut], xavierParam([1, numInds, dimOut], rng));
    this.mab0 = this.addModule('mab0', new MAB(dimOut, dimIn, dimOut, numHeads, { ...options, rng }));
    this.mab1 = this.addModule('mab1', new MAB(dimIn, dimOut, dimOut, numHeads, { ...options, rng }));
  }
  forward(X: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      const N = X.shape[0];
      const I = tf.tile(this.I, [N, 1, 1]) as tf.Tensor3D;
      const H = this.mab0.forward(I, X, mask);
      // the inducing points are never padding: no mask on the second attention
      return this.mab1.forward(X, H);
    });
  }
}

/** PMA(X) = MAB(S, X) with `numSeeds` learned seed vectors S [1, numSeeds, dim]. */
export class PMA extends Module {
  readonly S: tf.Variable;
  readonly mab: MAB;
  constructor(readonly dim: number, numHeads: number, readonly numSeeds: number, options: { ln?: boolean; rng?: Rng } = {}) {
    super();
    const rng = options.rng ?? defaultRng();
    this.S = this.addParameter('S', [1, numSeeds, dim], xavierParam([1, numSeeds, dim], rng));
    this.mab = this.addModule('mab', new MAB(dim, dim, dim, numHeads, { ...options, rng }));
    // softmax cancels the key bias of shared queries: it never affects the output, so it is frozen
    // (its true gradient is zero; every trainable parameter then receives a gradient)
    this.mab.fc_k.bias!.trainable = false;
  }
  forward(X: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D {
    return this.mab.attendSharedQueries(this.S.reshape([this.numSeeds, this.dim]) as tf.Tensor2D, X, mask);
  }
}

/** Which encoder/decoder SetPool builds; MetaD2A uses 'sabPF'. */
export type SetPoolMode = 'sabPF' | 'sabP' | 'sab' | 'isabPF' | 'isabP' | 'isab';

interface Block extends Module {
  forward(X: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D;
}

/** Holds modules under the numeric names of a torch.nn.Sequential (enc.0, enc.1, dec.0, ...). */
class Seq extends Module {
  readonly items: Module[] = [];
  add<M extends Module>(m: M): M {
    this.addModule(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
}

/**
 * MetaD2A's SetPool: enc = two SABs (or ISABs), dec = PMA (+ Linear for 'PF'; + two SABs + Linear when
 * the mode has no 'P'). Names: enc.0, enc.1, dec.0 (PMA), dec.1 (Linear) ... as in the PyTorch state dict.
 */
export class SetPool extends Module {
  readonly enc: Seq;
  readonly dec: Seq;
  readonly encBlocks: Block[];
  readonly pma: PMA;
  readonly decBlocks: Block[] = [];
  readonly out: Linear | null;

  constructor(
    readonly dimInput: number,
    readonly numOutputs: number,
    readonly dimOutput: number,
    options: { numInds?: number; dimHidden?: number; numHeads?: number; ln?: boolean; mode: SetPoolMode; rng?: Rng },
  ) {
    super();
    const dimHidden = options.dimHidden ?? 128;
    const numHeads = options.numHeads ?? 4;
    const numInds = options.numInds ?? 32;
    const o = { ln: options.ln ?? false, rng: options.rng };
    const mode = options.mode;
    this.enc = this.addModule('enc', new Seq());
    this.dec = this.addModule('dec', new Seq());
    if (mode.startsWith('sab')) {
      this.encBlocks = [this.enc.add(new SAB(dimInput, dimHidden, numHeads, o)), this.enc.add(new SAB(dimHidden, dimHidden, numHeads, o))];
    } else {
      this.encBlocks = [
        this.enc.add(new ISAB(dimInput, dimHidden, numHeads, numInds, o)),
        this.enc.add(new ISAB(dimHidden, dimHidden, numHeads, numInds, o)),
      ];
    }
    this.pma = this.dec.add(new PMA(dimHidden, numHeads, numOutputs, o));
    if (mode.endsWith('PF')) {
      this.out = this.dec.add(new Linear(dimHidden, dimOutput, { rng: o.rng }));
    } else if (mode.endsWith('P')) {
      this.out = null;
    } else {
      this.decBlocks.push(this.dec.add(new SAB(dimHidden, dimHidden, numHeads, o)), this.dec.add(new SAB(dimHidden, dimHidden, numHeads, o)));
      this.out = this.dec.add(new Linear(dimHidden, dimOutput, { rng: o.rng }));
    }
  }

  /** X [N, m, dimInput] with optional key mask [N, m] -> [N, numOutputs, dimOutput]. */
  forward(X: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D {
    if (X.rank !== 3 || X.shape[2] !== this.dimInput) throw new ShapeError('SetPool input', [X.shape[0] ?? -1, X.shape[1] ?? -1, this.dimInput], X.shape);
    return tf.tidy(() => this.finish(this.encBlocks[0].forward(X, mask), mask));
  }

  /** The first encoder block's MAB when it is a SAB (its projections can be precomputed row-wise). */
  firstSab(): MAB | null {
    return this.encBlocks[0] instanceof SAB ? this.encBlocks[0].mab : null;
  }

  /**
   * Forward from the first SAB's projected rows Q, K, V [N*m, dHidden] (see MAB.project): the
   * rest of the pool is unchanged. Lets callers project a feature pool once and gather rows.
   */
  forwardFromProjections(Q: tf.Tensor2D, K: tf.Tensor2D, V: tf.Tensor2D, N: number, m: number, mask?: tf.Tensor2D | null): tf.Tensor3D {
    const mab = this.firstSab();
    if (!mab) throw new Error('forwardFromProjections needs a SAB as the first encoder block');
    return tf.tidy(() => this.finish(mab.attend(Q, K, V, N, m, m, mask), mask));
  }

  private finish(first: tf.Tensor3D, mask?: tf.Tensor2D | null): tf.Tensor3D {
    return tf.tidy(() => {
      let h = first;
      for (const b of this.encBlocks.slice(1)) h = b.forward(h, mask);
      h = this.pma.forward(h, mask);
      // after pooling the seeds are the set: no more padding
      for (const b of this.decBlocks) h = b.forward(h);
      if (this.out) h = this.out.forward(h) as tf.Tensor3D;
      return h;
    });
  }
}
