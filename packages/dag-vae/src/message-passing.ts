import * as tf from '@tensorflow/tfjs';
import type { GRUCell, Linear } from '@metad2a/nn';

/**
 * A GRUCell's weights laid out once per forward call for many batched steps: the input-gate table
 * W_ih^T + b_ih indexed by vertex type (inputs are one-hots), W_hh^T pre-transposed, and a step that
 * skips the W_hh matmul when the hidden input is zero (vertices without predecessors).
 */
export class GruWeights {
  readonly hs: number;
  /** [nvt, 3hs]: row t = W_ih one-hot(t) + b_ih. */
  readonly table: tf.Tensor2D;
  readonly whhT: tf.Tensor2D;
  readonly bhh: tf.Tensor1D;

  constructor(cell: GRUCell) {
    this.hs = cell.hiddenSize;
    this.table = cell.weightIh.transpose().add(cell.biasIh) as tf.Tensor2D;
    this.whhT = cell.weightHh.transpose() as tf.Tensor2D;
    this.bhh = cell.biasHh as unknown as tf.Tensor1D;
  }

  /** Input gates of one-hot type rows [B, nvt] -> [B, 3hs] (a matmul, so gradients reach W_ih on wasm). */
  inputGates(oneHot: tf.Tensor2D): tf.Tensor2D {
    return tf.matMul(oneHot, this.table);
  }

  /** torch.nn.GRUCell given precomputed input gates gi [B, 3hs] and hidden input h (null = zeros). */
  step(gi: tf.Tensor2D, h: tf.Tensor2D | null): tf.Tensor2D {
    const H = this.hs;
    const gh: tf.Tensor = h ? tf.matMul(h, this.whhT).add(this.bhh) : this.bhh.reshape([1, 3 * H]);
    const B = gi.shape[0];
    const rz = tf.sigmoid(gi.slice([0, 0], [B, 2 * H]).add(gh.slice([0, 0], [-1, 2 * H])));
    const r = rz.slice([0, 0], [B, H]);
    const z = rz.slice([0, H], [B, H]);
    const nGate = tf.tanh(gi.slice([0, 2 * H], [B, H]).add(r.mul(gh.slice([0, 2 * H], [-1, H]))));
    // h' = (1 - z) n + z h
    return (h ? nGate.add(z.mul(h.sub(nGate))) : nGate.sub(z.mul(nGate))) as tf.Tensor2D;
  }

  /** The tensors this object owns (not the module's variables). */
  tensors(): tf.Tensor[] {
    return [this.table, this.whhT];
  }
}

/**
 * D-VAE's gated message from a sender vertex p with state h_p and "vid" one-hot e_p (length n):
 *   m_p = sigmoid(Wg [h_p; e_p] + bg) * (Wm [h_p; e_p])          (the mapper has no bias)
 * Wg e_p is column hs+p of Wg, so the vid part is a per-vertex bias row. Gate and mapper run as
 * one matmul; `extra` ([out, hs] weights with bias) rides along on the same matmul (the decoder's
 * add_edge first layer applied to h_p).
 */
export class MessageWeights {
  readonly hs: number;
  readonly extraOut: number;
  /** [hs, 2hs (+ extraOut)]. */
  readonly wT: tf.Tensor2D;
  /** n rows of [1, 2hs]: (Wg e_p + bg ; Wm e_p). */
  readonly vidBias: tf.Tensor2D[];
  readonly extraBias: tf.Tensor1D | null;

  constructor(gate: Linear, mapper: Linear, n: number, extra?: { weight: tf.Tensor2D; bias: tf.Tensor1D }) {
    const hs = gate.outFeatures;
    this.hs = hs;
    this.extraOut = extra ? extra.weight.shape[0] : 0;
    const wg = gate.weight as tf.Tensor2D;
    const wm = mapper.weight as tf.Tensor2D;
    const parts = [wg.slice([0, 0], [hs, hs]), wm.slice([0, 0], [hs, hs])];
    if (extra) parts.push(extra.weight);
    this.wT = tf.concat(parts, 0).transpose() as tf.Tensor2D;
    const vid = tf.concat([wg.slice([0, hs], [hs, n]).transpose().add(gate.bias!), wm.slice([0, hs], [hs, n]).transpose()], 1);
    this.vidBias = tf.split(vid, n, 0) as tf.Tensor2D[];
    this.extraBias = extra ? extra.bias : null;
  }

  /** Message of sender p (and the extra projection, when configured) from its final state h [B, hs]. */
  message(h: tf.Tensor2D, p: number): { msg: tf.Tensor2D; extra: tf.Tensor2D | null } {
    const hs = this.hs;
    const B = h.shape[0];
    const t = tf.matMul(h, this.wT);
    const gm = (this.extraOut ? t.slice([0, 0], [B, 2 * hs]) : t).add(this.vidBias[p]);
    const msg = tf.sigmoid(gm.slice([0, 0], [B, hs])).mul(gm.slice([0, hs], [B, hs])) as tf.Tensor2D;
    const extra = this.extraOut ? (t.slice([0, 2 * hs], [B, this.extraOut]).add(this.extraBias!) as tf.Tensor2D) : null;
    return { msg, extra };
  }

  tensors(): tf.Tensor[] {
    return [this.wT, ...this.vidBias];
  }
}

/** One-hot rows [B, k] of the given integer ids. */
export function oneHotRows(ids: ArrayLike<number>, k: number): tf.Tensor2D {
  const out = new Float32Array(ids.length * k);
  for (let i = 0; i < ids.length; i++) out[i * k + ids[i]] = 1;
  return tf.tensor2d(out, [ids.length, k]);
}
