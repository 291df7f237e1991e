import * as tf from '@tensorflow/tfjs';
import { InputError } from '@metad2a/core';
import { fusedAdamUpdate, type AdamUpdate, type StateDict } from '@metad2a/nn';

interface Slot {
  m: tf.Variable;
  v: tf.Variable;
  step: number;
}

/**
 * torch.optim.Adam (single-tensor path, no weight decay, amsgrad off), keyed by parameter name:
 * a parameter gets its moments on its first gradient, and a step without a gradient for it leaves
 * it and its moments untouched, exactly as PyTorch skips parameters whose .grad is None. (tfjs'
 * Adam keys its slots by position, so the set of parameters must never change between steps or
 * across a resume; the original keeps modules it never calls, which makes that fragile.)
 *
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  t += 1
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
export class TorchAdam {
  lr: number;
  private readonly slots = new Map<string, Slot>();
  /** Steps taken (batches), for logs and checkpoints. */
  iterations = 0;

  constructor(
    lr: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.lr = lr;
  }

  /**
   * One update from gradients by parameter name; `params` maps names to the variables. Where the
   * fused host ops run (@metad2a/nn fusedOps: the OpenBLAS addon on wasm/cpu, METAD2A_FUSED not
   * 'off'), all parameters are updated by one native call, in place; otherwise by the tfjs
   * composition below. Both compute the same float32 operations in the same order.
   */
  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>): void {
    this.iterations++;
    const items: AdamUpdate[] = [];
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`TorchAdam: gradient for unknown parameter '${name}'`);
      let s = this.slots.get(name);
      if (!s) {
        s = tf.tidy(() => ({ m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false), step: 0 }));
        this.slots.set(name, s);
      }
      s.step++;
      items.push({ p, g, m: s.m, v: s.v, stepSize: this.lr / (1 - this.beta1 ** s.step), sqrtBc2: Math.sqrt(1 - this.beta2 ** s.step) });
    }
    if (fusedAdamUpdate(items, this.beta1, this.beta2, this.eps)) return;
    for (const it of items) {
      tf.tidy(() => {
        const m = it.m.mul(this.beta1).add(it.g.mul(1 - this.beta1));
        const v = it.v.mul(this.beta2).add(it.g.square().mul(1 - this.beta2));
        it.m.assign(m);
        it.v.assign(v);
        const denom = v.sqrt().div(it.sqrtBc2).add(this.eps);
        it.p.assign(it.p.sub(m.div(denom).mul(it.stepSize)));
      });
    }
  }

  /** Moments as `optimizer.m.<param>`, `optimizer.v.<param>`, per-parameter `optimizer.step.<param>` and `optimizer.iterations`. */
  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    out.set('optimizer.iterations', { shape: [], data: Float32Array.of(this.iterations) });
    for (const [name, s] of this.slots) {
      out.set(`optimizer.m.${name}`, { shape: [...s.m.shape], data: Float32Array.from(await s.m.data()) });
      out.set(`optimizer.v.${name}`, { shape: [...s.v.shape], data: Float32Array.from(await s.v.data()) });
      out.set(`optimizer.step.${name}`, { shape: [], data: Float32Array.of(s.step) });
    }
    return out;
  }

  /** Restore a stateDict(); every slot must belong to a parameter of the same shape. */
  loadState(state: StateDict, params: ReadonlyMap<string, tf.Variable>, source = 'state'): void {
    const it = state.get('optimizer.iterations');
    if (!it) throw new InputError({ file: source, field: 'optimizer.iterations' }, 'no optimizer state in this checkpoint');
    this.dispose();
    this.iterations = it.data[0];
    for (const [key, m] of state) {
      if (!key.startsWith('optimizer.m.')) continue;
      const name = key.slice('optimizer.m.'.length);
      const p = params.get(name);
      const v = state.get(`optimizer.v.${name}`);
      const step = state.get(`optimizer.step.${name}`);
      if (!p) throw new InputError({ file: source, field: key }, 'optimizer state for a parameter this model does not have');
      if (!v || !step) throw new InputError({ file: source, field: key }, 'incomplete optimizer state (needs m, v and step)');
      for (const a of [m, v]) {
        if (a.shape.length !== p.shape.length || a.shape.some((d, i) => d !== p.shape[i])) {
          throw new InputError({ file: source, field: key }, `shape [${a.shape}] does not match the parameter's [${p.shape}]`);
        }
      }
      this.slots.set(name, tf.tidy(() => ({ m: tf.variable(tf.tensor(m.data, m.shape, 'float32'), false), v: tf.variable(tf.tensor(v.data, v.shape, 'float32'), false), step: step.data[0] })));
    }
  }

  /** Names of the parameters that have received gradients. */
  get trained(): string[] {
    return [...this.slots.keys()];
  }

  dispose(): void {
    for (const s of this.slots.values()) tf.dispose([s.m, s.v]);
    this.slots.clear();
  }
}
