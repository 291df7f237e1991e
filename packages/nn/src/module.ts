import * as tf from '@tensorflow/tfjs';
import { InputError, ShapeError, type Rng } from '@metad2a/core';
import { defaultRng, linearBound, uniformArray } from './init.js';
import { batchNormTrain } from './fused.js';

/** A named tensor value with its shape, as loaded from a checkpoint or a PyTorch state dict. */
export interface NamedArray {
  shape: number[];
  data: Float32Array;
  /** Source dtype where it was not float32 (PyTorch int64 buffers, halves); data is float32 regardless. */
  dtype?: string;
}

export type StateDict = Map<string, NamedArray>;

/**
 * A tree of named parameters, named like PyTorch's state dict (`enc.0.mab.fc_q.weight`), so that
 * checkpoints of the original load by name. Parameters are tf.Variables, trainable by default.
 */
export class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();

  protected addParameter(name: string, shape: number[], values: Float32Array, trainable = true): tf.Variable {
    if (this.ownParams.has(name)) throw new Error(`parameter '${name}' registered twice`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (values.length !== size) throw new ShapeError(`initial value of '${name}'`, shape, [values.length]);
    // The initial tensor is disposed by tidy; the variable keeps its own reference to the data.
    const v = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), trainable));
    this.ownParams.set(name, v);
    return v;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    if (this.children.has(name)) throw new Error(`submodule '${name}' registered twice`);
    this.children.set(name, m);
    return m;
  }

  /** All parameters with their dotted names, in registration order (PyTorch's state-dict order). */
  namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.ownParams) out.push([prefix + n, v]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  trainableParameters(): tf.Variable[] {
    return this.parameters().filter((v) => v.trainable);
  }

  numParameters(): number {
    return this.parameters().reduce((s, v) => s + v.size, 0);
  }

  /** Copy of every parameter's value, by name (copies: the cpu backend's dataSync returns its own buffer). */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [n, v] of this.namedParameters()) out.set(n, { shape: [...v.shape], data: Float32Array.from(v.dataSync() as Float32Array) });
    return out;
  }

  /**
   * Assign parameter values by name. Every parameter of the module must be present (strict) and
   * every shape must match; names in `state` that the module does not have are reported in
   * `unexpected` (the original's unused modules land there when a caller chose not to build them).
   */
  loadStateDict(state: StateDict, options: { strict?: boolean; source?: string } = {}): { missing: string[]; unexpected: string[] } {
    const strict = options.strict ?? true;
    const src = options.source ? ` from ${options.source}` : '';
    const own = this.namedParameters();
    const ownNames = new Set(own.map(([n]) => n));
    const missing = own.filter(([n]) => !state.has(n)).map(([n]) => n);
    const unexpected = [...state.keys()].filter((n) => !ownNames.has(n));
    if (strict && missing.length) {
      const hint = unexpected.length ? `the state has names this module lacks: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', ...' : ''}` : undefined;
      throw new InputError({ file: options.source }, `loading state: missing parameters ${missing.join(', ')}`, hint);
    }
    // Check everything before assigning anything, so a bad state leaves the module untouched.
    for (const [n, v] of own) {
      const s = state.get(n);
      if (!s) continue;
      const same = s.shape.length === v.shape.length && s.shape.every((d, i) => d === v.shape[i]);
      if (!same) throw new ShapeError(`parameter '${n}'${src}`, v.shape, s.shape);
      if (s.data.length !== v.size) throw new ShapeError(`values of parameter '${n}'${src}`, [v.size], [s.data.length]);
    }
    for (const [n, v] of own) {
      const s = state.get(n);
      if (!s) continue;
      const t = tf.tensor(s.data, s.shape, 'float32');
      v.assign(t);
      t.dispose();
    }
    return { missing, unexpected };
  }

  dispose(): void {
    for (const v of this.parameters()) v.dispose();
  }
}

/** y = x W^T + b with W stored [out, in] as in PyTorch. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; rng?: Rng } = {},
  ) {
    super();
    const rng = options.rng ?? defaultRng();
    const bound = linearBound(inFeatures);
    this.weight = this.addParameter('weight', [outFeatures, inFeatures], uniformArray(outFeatures * inFeatures, bound, rng));
    this.bias = options.bias === false ? null : this.addParameter('bias', [outFeatures], uniformArray(outFeatures, bound, rng));
  }

  /** x: [..., in] -> [..., out]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const x2 = shape.length === 2 ? x : x.reshape([-1, this.inFeatures]);
      let y = tf.matMul(x2 as tf.Tensor2D, this.weight as tf.Tensor2D, false, true);
      if (this.bias) y = y.add(this.bias);
      return shape.length === 2 ? y : y.reshape([...shape.slice(0, -1), this.outFeatures]);
    });
  }
}

/**
 * torch.nn.GRUCell: gates packed (r, z, n) in weight_ih [3h, in] and weight_hh [3h, h];
 * r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
 * n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
 */
export class GRUCell extends Module {
  readonly weightIh: tf.Variable;
  readonly weightHh: tf.Variable;
  readonly biasIh: tf.Variable;
  readonly biasHh: tf.Variable;
  constructor(
    readonly inputSize: number,
    readonly hiddenSize: number,
    options: { rng?: Rng } = {},
  ) {
    super();
    const rng = options.rng ?? defaultRng();
    const b = 1 / Math.sqrt(hiddenSize);
    const h3 = 3 * hiddenSize;
    this.weightIh = this.addParameter('weight_ih', [h3, inputSize], uniformArray(h3 * inputSize, b, rng));
    this.weightHh = this.addParameter('weight_hh', [h3, hiddenSize], uniformArray(h3 * hiddenSize, b, rng));
    this.biasIh = this.addParameter('bias_ih', [h3], uniformArray(h3, b, rng));
    this.biasHh = this.addParameter('bias_hh', [h3], uniformArray(h3, b, rng));
  }

  /** The input projection W_ih x + b_ih alone, so callers can precompute it for one-hot inputs. */
  inputGates(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.matMul(x, this.weightIh as tf.Tensor2D, false, true).add(this.biasIh) as tf.Tensor2D);
  }

  /** x: [B, in], h: [B, hidden] (zeros when omitted, as in PyTorch) -> [B, hidden]. */
  forward(x: tf.Tensor2D, h?: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.forwardFromInputGates(this.inputGates(x), h ?? (tf.zeros([x.shape[0], this.hiddenSize]) as tf.Tensor2D)));
  }

  /** The cell given precomputed input gates gi = W_ih x + b_ih ([B, 3h]). */
  forwardFromInputGates(gi: tf.Tensor2D, h: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const H = this.hiddenSize;
      const gh = tf.matMul(h, this.weightHh as tf.Tensor2D, false, true).add(this.biasHh) as tf.Tensor2D;
      const [ir, iz, inn] = tf.split(gi, [H, H, H], 1);
      const [hr, hz, hn] = tf.split(gh, [H, H, H], 1);
      const r = tf.sigmoid(ir.add(hr));
      const z = tf.sigmoid(iz.add(hz));
      const n = tf.tanh(inn.add(r.mul(hn)));
      // h' = (1 - z) * n + z * h = n + z * (h - n)
      return n.add(z.mul(h.sub(n))) as tf.Tensor2D;
    });
  }
}

/** LayerNorm over the last axis with PyTorch's defaults (eps 1e-5, affine weight 1, bias 0). */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    readonly size: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.addParameter('weight', [size], new Float32Array(size).fill(1));
    this.bias = this.addParameter('bias', [size], new Float32Array(size));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x.sub(mean).div(variance.add(this.eps).sqrt()).mul(this.weight).add(this.bias);
    });
  }
}

/**
 * PyTorch's BatchNorm2d (affine, track_running_stats, eps 1e-5, momentum 0.1) on NHWC tensors: batch
 * statistics in training (running ones updated with the unbiased variance, as PyTorch does), running
 * statistics in eval. Both search spaces' networks use it (NB201's ReLUConvBN, OFA's bn).
 */
export class BatchNorm2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = this.addParameter('weight', [channels], new Float32Array(channels).fill(1));
    this.bias = this.addParameter('bias', [channels], new Float32Array(channels));
    this.runningMean = this.addParameter('running_mean', [channels], new Float32Array(channels), false);
    this.runningVar = this.addParameter('running_var', [channels], new Float32Array(channels).fill(1), false);
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      // y = x * s + t with per-channel s = weight / sqrt(var + eps), t = bias - mean * s: the values of
      // tf.batchNorm4d, but its gradient (FusedBatchNorm) tiles a [C] tensor to x's full shape, which
      // took over a third of a training step on wasm; broadcasting avoids that.
      if (!training) {
        const s = this.weight.mul(tf.rsqrt(this.runningVar.add(this.eps)));
        return x.mul(s).add(this.bias.sub(this.runningMean.mul(s))) as tf.Tensor4D;
      }
      const n = x.size / this.channels;
      const fused = batchNormTrain(x, this.weight, this.bias, this.eps);
      if (fused) {
        // the running statistics on the host too: two small tensors instead of ~10 kernels
        const m = this.momentum;
        const unbias = n > 1 ? n / (n - 1) : 1;
        const rm = this.runningMean.dataSync();
        const rv = this.runningVar.dataSync();
        const newMean = new Float32Array(this.channels);
        const newVar = new Float32Array(this.channels);
        for (let c = 0; c < this.channels; c++) {
          newMean[c] = rm[c] * (1 - m) + fused.mean[c] * m;
          newVar[c] = rv[c] * (1 - m) + fused.variance[c] * m * unbias;
        }
        tf.tidy(() => {
          this.runningMean.assign(tf.tensor1d(newMean));
          this.runningVar.assign(tf.tensor1d(newVar));
        });
        return fused.y as tf.Tensor4D;
      }
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      // PyTorch normalises with the biased variance and tracks the unbiased one; assign() is not taped.
      tf.tidy(() => {
        const m = this.momentum;
        this.runningMean.assign(this.runningMean.mul(1 - m).add(mean.mul(m)));
        this.runningVar.assign(this.runningVar.mul(1 - m).add(variance.mul(m * (n > 1 ? n / (n - 1) : 1))));
      });
      const s = this.weight.mul(tf.rsqrt(variance.add(this.eps)));
      return x.mul(s).add(this.bias.sub(mean.mul(s))) as tf.Tensor4D;
    });
  }
}

/** A module or function usable as a step of a Sequential. */
export type Layer = Module & { forward(x: tf.Tensor): tf.Tensor };

class Activation extends Module {
  constructor(private readonly fn: (x: tf.Tensor) => tf.Tensor) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return this.fn(x);
  }
}

export class ReLU extends Activation {
  constructor() {
    super((x) => tf.relu(x));
  }
}
export class Sigmoid extends Activation {
  constructor() {
    super((x) => tf.sigmoid(x));
  }
}
export class Tanh extends Activation {
  constructor() {
    super((x) => tf.tanh(x));
  }
}

/** Layers applied in order and named 0, 1, 2, ... like torch.nn.Sequential (parameter-free ones keep their index). */
export class Sequential extends Module {
  readonly layers: Layer[];
  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.addModule(String(i), l));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.layers.reduce((h, l) => l.forward(h), x));
  }
}

/**
 * The entries of `state` whose names start with `prefix`, renamed without it: pick one submodule's
 * tensors out of a whole-model state dict (`selectPrefix(sd, 'add_vertex.')` -> '0.weight', ...).
 */
export function selectPrefix(state: StateDict, prefix: string): StateDict {
  const out: StateDict = new Map();
  for (const [n, v] of state) if (n.startsWith(prefix)) out.set(n.slice(prefix.length), v);
  return out;
}
