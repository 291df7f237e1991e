import * as tf from '@tensorflow/tfjs';

/**
 * torch.optim.SGD semantics: g = grad + wd*p; buf = momentum*buf + g (buf = g on the first step);
 * nesterov: step = g + momentum*buf, else step = buf; p -= lr*step.
 */
export class SgdMomentum {
  private readonly buffers = new Map<tf.Variable, tf.Variable>();
  constructor(
    readonly momentum: number,
    readonly weightDecay: number,
    readonly nesterov: boolean,
  ) {}

  step(grads: Map<tf.Variable, tf.Tensor>, lr: number): void {
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
  }
}

/** Cosine annealing from `base` to `min` over `total` steps, after `warmup` linear warm-up steps. */
export function cosineLr(base: number, step: number, total: number, warmup = 0, min = 0): number {
  if (warmup > 0 && step < warmup) return (base * (step + 1)) / warmup;
  const t = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return min + 0.5 * (base - min) * (1 + Math.cos(Math.PI * t));
}
