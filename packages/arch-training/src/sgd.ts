import * as tf from '@tensorflow/tfjs';
import { fusedOps } from '@metad2a/nn';

/**
 * torch.optim.SGD semantics: g = grad + wd*p; buf = momentum*buf + g (buf = g on the first step);
 * nesterov: step = g + momentum*buf, else step = buf; p -= lr*step.
 *
 * Where the fused host ops run (wasm/cpu with kernels-blas, METAD2A_FUSED not off), the update is
 * computed on the host with the momentum buffers in JS arrays: one upload per parameter instead of
 * ~8 small kernels each, which were a fifth of a cell network's training step on wasm. The mode is
 * fixed at the first step so the buffers never split between the two representations.
 */
export class SgdMomentum {
  private readonly buffers = new Map<tf.Variable, tf.Variable>();
  private readonly hostBuffers = new Map<tf.Variable, Float32Array>();
  private host: boolean | null = null;
  constructor(
    readonly momentum: number,
    readonly weightDecay: number,
    readonly nesterov: boolean,
  ) {}

  step(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
    if (this.host === null) this.host = fusedOps() !== null;
    if (this.host) this.hostStep(grads, lr);
    else this.tensorStep(grads, lr);
  }

  private hostStep(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
    const { momentum: mu, weightDecay: wd, nesterov } = this;
    for (const [p, grad] of grads) {
      const pv = p.dataSync() as Float32Array;
      const gv = grad.dataSync() as Float32Array;
      let buf = this.hostBuffers.get(p);
      const first = !buf;
      if (!buf) {
        buf = new Float32Array(pv.length);
        this.hostBuffers.set(p, buf);
      }
      const next = new Float32Array(pv.length);
      for (let i = 0; i < pv.length; i++) {
        const g = Math.fround(gv[i] + wd * pv[i]);
        const b = first ? g : Math.fround(mu * buf[i] + g);
        buf[i] = b;
        const update = mu === 0 ? g : nesterov ? Math.fround(g + mu * b) : b;
        next[i] = pv[i] - lr * update;
      }
      const t = tf.tensor(next, p.shape);
      p.assign(t); // the variable keeps the data; the tensor object goes
      t.dispose();
    }
  }

  private tensorStep(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
    tf.tidy(() => {
      for (const [p, grad] of grads) {
        let g = grad;
        if (this.weightDecay !== 0) g = g.add(p.mul(this.weightDecay));
        let buf = this.buffers.get(p);
        if (!buf) {
          buf = tf.variable(g, false);
          this.buffers.set(p, buf);
        } else {
          buf.assign(buf.mul(this.momentum).add(g));
        }
        const update = this.momentum === 0 ? g : this.nesterov ? g.add(buf.mul(this.momentum)) : buf;
        p.assign(p.sub(update.mul(lr)));
      }
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
    this.hostBuffers.clear();
  }
}

/** Cosine annealing from `base` to `min` over `total` steps, after `warmup` linear warm-up steps. */
export function cosineLr(base: number, step: number, total: number, warmup = 0, min = 0): number {
  if (warmup > 0 && step < warmup) return (base * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return min + 0.5 * (base - min) * (1 + Math.cos(Math.PI * t));
}
