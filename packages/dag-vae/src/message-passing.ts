import * as tf from '@tensorflow/tfjs';
import type { GRUCell, Linear } from '@metad2a/nn';

/** x W + bias in one kernel (OpenBLAS sgemm + epilogue where kernels-blas is active). */
export function affine(x: tf.Tensor2D, w: tf.Tensor2D, bias?: tf.Tensor | null, activation?: 'relu' | 'linear'): tf.Tensor2D {
  return tf.fused.matMul({ a: x, b: w, bias: bias ?? undefined, activation: activation ?? 'linear' }) as tf.Tensor2D;
}

/** Input gates of a batch of vertices, one [B, hs] tensor per GRU gate. */
export type GateInputs = {
  r: tf.Tensor2D;
  z: tf.Tensor2D;
  n: tf.Tensor2D;
};

/**
 * A GRUCell's weights laid out once per forward call for many batched steps. Each gate (r, z, n)
 * gets its own matmuls: slicing [B, 3hs] outputs costs more than it saves on the wasm backend.
 * Inputs are vertex-type one-hots, so W_ih x + b_ih is a row of a per-type table (a matmul with the
 * one-hot keeps gradients on wasm, which has no gather gradient without kernels-blas). When the
 * hidden input is zero (no predecessors) the W_hh matmuls are skipped.
 */
export class GruWeights {
  readonly hs: number;
  /** [nvt, hs] per gate: W_i* one-hot(t) + b_i*. */
  readonly table: GateInputs;
  /** [hs, hs] per gate, transposed. */
  readonly whh: GateInputs;
  /** [hs] per gate (rank 1: the stock wasm _FusedMatMul takes only rank-1 biases). */
  readonly bhh: { r: tf.Tensor1D; z: tf.Tensor1D; n: tf.Tensor1D };

  constructor(cell: GRUCell) {
    const H = cell.hiddenSize;
    this.hs = H;
    const gate = (k: number) => ({
      table: cell.weightIh.slice([k * H, 0], [H, -1]).transpose().add(cell.biasIh.slice([k * H], [H])) as tf.Tensor2D,
      whh: cell.weightHh.slice([k * H, 0], [H, H]).transpose() as tf.Tensor2D,
      bhh: cell.biasHh.slice([k * H], [H]) as tf.Tensor1D,
    });
    const [r, z, n] = [gate(0), gate(1), gate(2)];
    this.table = { r: r.table, z: z.table, n: n.table };
    this.whh = { r: r.whh, z: z.whh, n: n.whh };
    this.bhh = { r: r.bhh, z: z.bhh, n: n.bhh };
  }

  /** Input gates of one-hot type rows [B, nvt]. */
  inputGates(oneHot: tf.Tensor2D): GateInputs {
    return { r: tf.matMul(oneHot, this.table.r), z: tf.matMul(oneHot, this.table.z), n: tf.matMul(oneHot, this.table.n) };
  }

  /**
   * torch.nn.GRUCell given input gates and the hidden input h (null = zeros):
   * r = s(gi_r + W_hr h + b_hr), z = s(gi_z + W_hz h + b_hz), n = tanh(gi_n + r (W_hn h + b_hn)),
   * h' = (1 - z) n + z h.
   */
  step(gi: GateInputs, h: tf.Tensor2D | null): tf.Tensor2D {
    const gh = (g: keyof GateInputs): tf.Tensor => (h ? affine(h, this.whh[g], this.bhh[g]) : this.bhh[g]);
    const r = tf.sigmoid(gi.r.add(gh('r')));
    const z = tf.sigmoid(gi.z.add(gh('z')));
    const nGate = tf.tanh(gi.n.add(r.mul(gh('n'))));
    return (h ? nGate.add(z.mul(h.sub(nGate))) : nGate.sub(z.mul(nGate))) as tf.Tensor2D;
  }

  tensors(): tf.Tensor[] {
    return [...Object.values(this.table), ...Object.values(this.whh), ...Object.values(this.bhh)];
  }
}

/**
 * D-VAE's gated message from a sender vertex p with state h_p and "vid" one-hot e_p (length n):
 *   m_p = sigmoid(Wg [h_p; e_p] + bg) * (Wm [h_p; e_p])          (the mapper has no bias)
 * Wg e_p is column hs+p of Wg, so the vid part is a per-vertex bias row. `extra` (weights [out, hs]
 * with bias) is another projection of h_p computed alongside (the decoder's add_edge half for h_vi).
 */
export class MessageWeights {
  readonly hs: number;
  readonly wg: tf.Tensor2D;
  readonly wm: tf.Tensor2D;
  /** n rows [hs]: Wg e_p + bg, and Wm e_p (rank 1, used as fused-matmul biases). */
  readonly vidGate: tf.Tensor1D[];
  readonly vidMap: tf.Tensor1D[];
  readonly extraW: tf.Tensor2D | null;
  readonly extraBias: tf.Tensor | null;

  constructor(gate: Linear, mapper: Linear, n: number, extra?: { weight: tf.Tensor2D; bias: tf.Tensor1D }) {
    const hs = gate.outFeatures;
    this.hs = hs;
    const g = gate.weight as tf.Tensor2D;
    const m = mapper.weight as tf.Tensor2D;
    this.wg = g.slice([0, 0], [hs, hs]).transpose();
    this.wm = m.slice([0, 0], [hs, hs]).transpose();
    // 1-D slices of a flat [n*hs] tensor: the stock wasm _FusedMatMul checks the rank of the bias's
    // underlying buffer, so a reshaped [1, hs] row (what unstack makes) is refused
    const rows = (t: tf.Tensor) => {
      const flat = t.reshape([n * hs]);
      return Array.from({ length: n }, (_, p) => flat.slice([p * hs], [hs]) as tf.Tensor1D);
    };
    this.vidGate = rows(g.slice([0, hs], [hs, n]).transpose().add(gate.bias!));
    this.vidMap = rows(m.slice([0, hs], [hs, n]).transpose());
    this.extraW = extra ? (extra.weight.transpose() as tf.Tensor2D) : null;
    this.extraBias = extra ? extra.bias : null;
  }

  /** Message of sender p (and the extra projection, when configured) from its final state h [B, hs]. */
  message(h: tf.Tensor2D, p: number): { msg: tf.Tensor2D; extra: tf.Tensor2D | null } {
    const msg = tf.sigmoid(affine(h, this.wg, this.vidGate[p])).mul(affine(h, this.wm, this.vidMap[p])) as tf.Tensor2D;
    const extra = this.extraW ? affine(h, this.extraW, this.extraBias) : null;
    return { msg, extra };
  }

  tensors(): tf.Tensor[] {
    return [this.wg, this.wm, ...this.vidGate, ...this.vidMap, ...(this.extraW ? [this.extraW] : [])];
  }
}

/** One-hot rows [B, k] of the given integer ids. */
export function oneHotRows(ids: ArrayLike<number>, k: number): tf.Tensor2D {
  const out = new Float32Array(ids.length * k);
  for (let i = 0; i < ids.length; i++) out[i * k + ids[i]] = 1;
  return tf.tensor2d(out, [ids.length, k]);
}
