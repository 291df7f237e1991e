import * as tf from '@tensorflow/tfjs';
import type { Rng } from '@metad2a/core';
import { BatchNorm2d, Linear, Module, boxMean3x3, defaultRng, linearBound, uniformArray } from '@metad2a/nn';

/** Re-exported: the network's BN is nn's (shared with the MBV3 subnet). */
export { BatchNorm2d };
import { resolveNetConfig, type Nb201NetConfig } from './cost.js';
import { NB201_EDGES, assertNb201Arch, type Nb201Arch, type Nb201Op } from './ops.js';

/**
 * The NB201 cell network (the benchmark's TinyNetwork, spec §5.2) in TensorFlow.js. Parameter
 * names follow the PyTorch original (`stem.0.weight`, `cells.6.conv_a.op.1.weight`,
 * `cells.3.layers.2.op.2.running_mean`, `classifier.weight`) so a converted state dict loads by
 * name; conv kernels are kept in tfjs layout [kh, kw, in, out] (PyTorch's is [out, in, kh, kw]).
 * Tensors are NHWC. BatchNorm running statistics are registered as non-trainable parameters so
 * they travel with stateDict(); count trainable parameters for the NB201 "params" figure.
 */

/** nn.Conv2d without bias; PyTorch's default init (kaiming_uniform a=sqrt(5): U(+-1/sqrt(fan_in))). */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly stride: number,
    readonly padding: number,
    rng: Rng,
  ) {
    super();
    const fanIn = inChannels * kernel * kernel;
    this.weight = this.addParameter('weight', [kernel, kernel, inChannels, outChannels], uniformArray(fanIn * outChannels, linearBound(fanIn), rng));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    // Symmetric explicit padding as in PyTorch; tf's 'same' pads stride-2 convs on the other side.
    return tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, this.padding === 0 ? 'valid' : this.padding);
  }
}

/** The two-slot container PyTorch names `op` in ReLUConvBN: op.0 = ReLU (no parameters), op.1 = conv, op.2 = BN. */
class ConvBNSeq extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(cin: number, cout: number, k: number, stride: number, pad: number, rng: Rng) {
    super();
    this.conv = this.addModule('1', new Conv2d(cin, cout, k, stride, pad, rng));
    this.bn = this.addModule('2', new BatchNorm2d(cout));
  }
}

/** ReLU -> Conv -> BN, the NB201 conv edge and the ResNet block's halves. */
export class ReLUConvBN extends Module {
  private readonly seq: ConvBNSeq;
  constructor(cin: number, cout: number, k: number, stride: number, pad: number, rng: Rng) {
    super();
    this.seq = this.addModule('op', new ConvBNSeq(cin, cout, k, stride, pad, rng));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return this.seq.bn.forward(this.seq.conv.forward(tf.relu(x)), training);
  }
}

/**
 * AvgPool2d(3, stride 1, padding 1, count_include_pad=False). Not tf.avgPool(x, 3, 1, 'same'):
 * its forward excludes the padding from the mean but tfjs 4.22's AvgPoolGrad (cpu) divides every
 * window by 9, so its gradient is wrong at the border. Summing over a zero-padded 'valid' window
 * and dividing by the count of in-image taps has consistent gradients.
 */
export function avgPool3x3(x: tf.Tensor4D): tf.Tensor4D {
  const fused = boxMean3x3(x);
  if (fused) return fused;
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const sums = tf.avgPool(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 1, 'valid').mul(9);
    const counts = new Float32Array(h * w);
    for (let i = 0; i < h; i++) {
      const ri = (i > 0 ? 1 : 0) + 1 + (i < h - 1 ? 1 : 0);
      for (let j = 0; j < w; j++) counts[i * w + j] = ri * ((j > 0 ? 1 : 0) + 1 + (j < w - 1 ? 1 : 0));
    }
    return sums.div(tf.tensor4d(counts, [1, h, w, 1])) as tf.Tensor4D;
  });
}

/** An op without parameters (skip, pool, none) still takes its slot in `layers` so indices match PyTorch. */
class NoParams extends Module {}

/** The searched cell: node j = sum over incoming edges of op(node i); output = node 3. */
export class Nb201Cell extends Module {
  private readonly edgeOps: Array<{ op: Nb201Op; layer: ReLUConvBN | null }>;
  /** Edges whose target cannot reach the output; skipped (they never change the logits). */
  private readonly live: boolean[];
  constructor(
    readonly arch: Nb201Arch,
    readonly channels: number,
    rng: Rng,
  ) {
    super();
    this.edgeOps = arch.map((op, k) => {
      const layer =
        op === 'nor_conv_3x3'
          ? new ReLUConvBN(channels, channels, 3, 1, 1, rng)
          : op === 'nor_conv_1x1'
            ? new ReLUConvBN(channels, channels, 1, 1, 0, rng)
            : null;
      this.addModule(`layers.${k}`, layer ?? new NoParams());
      return { op, layer };
    });
    // Node 3 is the output; node j<3 matters if some non-none edge leads from it to a node that matters.
    const matters = [false, false, false, true];
    for (let j = 2; j >= 0; j--) matters[j] = NB201_EDGES.some((e, k) => e.from === j && arch[k] !== 'none' && matters[e.to]);
    this.live = NB201_EDGES.map((e) => matters[e.to]);
  }

  /** Indices of edges that cannot reach the cell output (their parameters never get a gradient). */
  deadEdges(): number[] {
    return this.live.flatMap((l, k) => (l ? [] : [k]));
  }

  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    const nodes: tf.Tensor4D[] = [x];
    for (let to = 1; to <= 3; to++) {
      let acc: tf.Tensor4D | null = null;
      NB201_EDGES.forEach((e, k) => {
        if (e.to !== to || !this.live[k]) return;
        const { op, layer } = this.edgeOps[k];
        const src = nodes[e.from];
        let y: tf.Tensor4D | null;
        if (op === 'none') y = null;
        else if (op === 'skip_connect') y = src;
        else if (op === 'avg_pool_3x3') y = avgPool3x3(src);
        else y = layer!.forward(src, training);
        if (y) acc = acc ? (tf.add(acc, y) as tf.Tensor4D) : y;
      });
      nodes.push(acc ?? tf.zerosLike(x));
    }
    return nodes[3];
  }
}

/** ResNet basic block with stride 2 between stages (ResNetBasicblock of NB201). */
export class ResNetReduction extends Module {
  private readonly convA: ReLUConvBN;
  private readonly convB: ReLUConvBN;
  private readonly down: Conv2d;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.convA = this.addModule('conv_a', new ReLUConvBN(cin, cout, 3, 2, 1, rng));
    this.convB = this.addModule('conv_b', new ReLUConvBN(cout, cout, 3, 1, 1, rng));
    const downsample = this.addModule('downsample', new DownsampleSeq(cin, cout, rng));
    this.down = downsample.conv;
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    const main = this.convB.forward(this.convA.forward(x, training), training);
    const residual = this.down.forward(tf.avgPool(x, 2, 2, 'valid'));
    return tf.add(residual, main) as tf.Tensor4D;
  }
}

/** downsample = Sequential(AvgPool2d(2, 2), Conv2d 1x1): the conv is slot 1. */
class DownsampleSeq extends Module {
  readonly conv: Conv2d;
  constructor(cin: number, cout: number, rng: Rng) {
    super();
    this.conv = this.addModule('1', new Conv2d(cin, cout, 1, 1, 0, rng));
  }
}

class StemSeq extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(cin: number, c: number, rng: Rng) {
    super();
    this.conv = this.addModule('0', new Conv2d(cin, c, 3, 1, 1, rng));
    this.bn = this.addModule('1', new BatchNorm2d(c));
  }
}

class LastAct extends Module {
  readonly bn: BatchNorm2d;
  constructor(c: number) {
    super();
    this.bn = this.addModule('0', new BatchNorm2d(c));
  }
}

export interface Nb201NetworkOptions extends Partial<Nb201NetConfig> {
  /** Source of the initial weights; defaults to @metad2a/nn's global seeded generator. */
  rng?: Rng;
}

/** stem -> N cells (C) -> reduction -> N cells (2C) -> reduction -> N cells (4C) -> BN+ReLU -> GAP -> Linear. */
export class Nb201Network extends Module {
  readonly config: Nb201NetConfig;
  private readonly stem: StemSeq;
  private readonly namedBlocks: Array<[string, Nb201Cell | ResNetReduction]> = [];
  private readonly lastact: LastAct;
  readonly classifier: Linear;

  constructor(
    readonly arch: Nb201Arch,
    options: Nb201NetworkOptions = {},
  ) {
    super();
    assertNb201Arch(arch);
    const { rng: rngOpt, ...shape } = options;
    const rng = rngOpt ?? defaultRng();
    this.config = resolveNetConfig(shape);
    const { C, N, inChannels, numClasses } = this.config;
    this.stem = this.addModule('stem', new StemSeq(inChannels, C, rng));
    let c = C;
    let idx = 0;
    for (let stage = 0; stage < 3; stage++) {
      if (stage > 0) {
        this.addBlock(`cells.${idx++}`, new ResNetReduction(c, c * 2, rng));
        c *= 2;
      }
      for (let i = 0; i < N; i++) this.addBlock(`cells.${idx++}`, new Nb201Cell(arch, c, rng));
    }
    this.lastact = this.addModule('lastact', new LastAct(c));
    this.classifier = this.addModule('classifier', new Linear(c, numClasses, { rng }));
  }

  private addBlock(name: string, block: Nb201Cell | ResNetReduction): void {
    this.namedBlocks.push([name, this.addModule(name, block)]);
  }

  /** x: [B, H, W, inChannels] -> logits [B, numClasses]. `training` selects batch vs running BN statistics. */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      let h = this.stem.bn.forward(this.stem.conv.forward(x), training);
      for (const [, b] of this.namedBlocks) h = b.forward(h, training);
      h = tf.relu(this.lastact.bn.forward(h, training));
      const pooled = tf.mean(h, [1, 2]) as tf.Tensor2D;
      return this.classifier.forward(pooled) as tf.Tensor2D;
    });
  }

  /**
   * Trainable parameters that influence the logits: all of them except those on cell edges that
   * cannot reach the cell output. Those exist (NB201 builds and counts them) but, as in PyTorch,
   * never receive a gradient; tf.variableGrads leaves them out of its result, so optimise this list.
   */
  liveParameters(): tf.Variable[] {
    const dead: string[] = [];
    this.namedBlocks.forEach(([name, b]) => {
      if (b instanceof Nb201Cell) for (const k of b.deadEdges()) dead.push(`${name}.layers.${k}.`);
    });
    return this.namedParameters()
      .filter(([n, v]) => v.trainable && !dead.some((p) => n.startsWith(p)))
      .map(([, v]) => v);
  }

  /** Trainable parameters: NB201's "params" (BN running statistics excluded). */
  numTrainableParameters(): number {
    return this.trainableParameters().reduce((s, v) => s + v.size, 0);
  }
}
