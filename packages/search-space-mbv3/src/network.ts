import * as tf from '@tensorflow/tfjs';
import { ConfigError, ShapeError, type Rng } from '@metad2a/core';
// BN is nn's BatchNorm2d: OFA's bn_param (momentum 0.1, eps 1e-5) are PyTorch's defaults.
import { BatchNorm2d, Module, defaultRng, linearBound, normalArray, uniformArray } from '@metad2a/nn';
import type { OfaConfig } from './config.js';
import { resolveOfaNet, type OfaActivation, type OfaBlockSpec, type OfaNetOptions, type ResolvedOfaNet } from './cost.js';

/**
 * A trainable OFA MobileNetV3 subnet in TensorFlow.js, laid out as once-for-all's MobileNetV3
 * (first conv, first MBConv, the active blocks of the 5 stages, final expand, global average
 * pooling, feature mix without BN, dropout + linear classifier). Parameter names follow its
 * PyTorch state dict (`first_conv.conv.weight`, `blocks.3.conv.depth_conv.se.fc.reduce.bias`,
 * `classifier.linear.weight`) so supernet-extracted weights can be loaded by name; conv kernels
 * are tfjs-shaped [kh, kw, in, out] (depthwise [kh, kw, c, 1]), tensors NHWC. BatchNorm running
 * statistics are non-trainable parameters; the trainable count equals ofaCost().params.
 */

/** h_swish(x) = x * relu6(x + 3) / 6. */
export function hSwish(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => x.mul(tf.relu6(x.add(3))).div(6));
}

/** h_sigmoid(x) = relu6(x + 3) / 6. */
export function hSigmoid(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.relu6(x.add(3)).div(6));
}

function activate(x: tf.Tensor4D, act: OfaActivation | null): tf.Tensor4D {
  if (act === 'relu') return tf.relu(x);
  if (act === 'h_swish') return hSwish(x) as tf.Tensor4D;
  return x;
}

/** Conv2d (PyTorch padding k//2 on both sides), plain or depthwise; OFA's 'he_fout' init N(0, 2/(k*k*out)). */
export class OfaConv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernel: number,
    readonly stride: number,
    readonly depthwise: boolean,
    withBias: boolean,
    rng: Rng,
  ) {
    super();
    if (depthwise && inChannels !== outChannels) throw new Error(`depthwise conv needs in == out, got ${inChannels} -> ${outChannels}`);
    const std = Math.sqrt(2 / (kernel * kernel * outChannels));
    const shape = depthwise ? [kernel, kernel, inChannels, 1] : [kernel, kernel, inChannels, outChannels];
    this.weight = this.addParameter('weight', shape, normalArray(shape.reduce((a, b) => a * b, 1), std, rng));
    this.bias = withBias ? this.addParameter('bias', [outChannels], new Float32Array(outChannels)) : null;
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const pad = this.kernel === 1 ? 'valid' : Math.floor(this.kernel / 2);
      let y = this.depthwise
        ? tf.depthwiseConv2d(x, this.weight as tf.Tensor4D, this.stride, pad)
        : tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, pad);
      if (this.bias) y = y.add(this.bias);
      return y;
    });
  }
}

/** conv -> bn -> act [-> SE], named {conv, bn, se} (OFA's ConvLayer and the MBConv sub-sequences). */
export class ConvBnAct extends Module {
  readonly conv: OfaConv2d;
  readonly bn: BatchNorm2d | null;
  readonly se: SEModule | null;
  constructor(
    cin: number,
    cout: number,
    k: number,
    stride: number,
    readonly act: OfaActivation | null,
    rng: Rng,
    options: { depthwise?: boolean; bn?: boolean; seMid?: number } = {},
  ) {
    super();
    this.conv = this.addModule('conv', new OfaConv2d(cin, cout, k, stride, options.depthwise ?? false, false, rng));
    this.bn = options.bn === false ? null : this.addModule('bn', new BatchNorm2d(cout));
    this.se = options.seMid ? this.addModule('se', new SEModule(cout, options.seMid, rng)) : null;
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      let y = this.conv.forward(x);
      if (this.bn) y = this.bn.forward(y, training);
      y = activate(y, this.act);
      return this.se ? this.se.forward(y) : y;
    });
  }
}

/** A parameter-free container, for PyTorch name levels such as `se.fc` and `classifier.linear`. */
class Container extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.addModule(name, m);
  }
  param(name: string, shape: number[], values: Float32Array): tf.Variable {
    return this.addParameter(name, shape, values);
  }
}

/** Squeeze-and-excitation: mean -> 1x1 reduce (bias) -> relu -> 1x1 expand (bias) -> h_sigmoid -> scale. */
export class SEModule extends Module {
  readonly reduce: OfaConv2d;
  readonly expand: OfaConv2d;
  constructor(channels: number, mid: number, rng: Rng) {
    super();
    const fc = this.addModule('fc', new Container());
    this.reduce = fc.add('reduce', new OfaConv2d(channels, mid, 1, 1, false, true, rng));
    this.expand = fc.add('expand', new OfaConv2d(mid, channels, 1, 1, false, true, rng));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = tf.mean(x, [1, 2], true) as tf.Tensor4D;
      const g = hSigmoid(this.expand.forward(tf.relu(this.reduce.forward(y))));
      return x.mul(g) as tf.Tensor4D;
    });
  }
}

/** OFA's MBConvLayer: [1x1 expand -> bn -> act] -> kxk depthwise -> bn -> act [-> SE] -> 1x1 -> bn. */
export class MBConvLayer extends Module {
  readonly invertedBottleneck: ConvBnAct | null;
  readonly depthConv: ConvBnAct;
  readonly pointLinear: ConvBnAct;
  constructor(
    readonly spec: OfaBlockSpec,
    rng: Rng,
  ) {
    super();
    const { inChannels, midChannels, outChannels, kernel, stride, act } = spec;
    this.invertedBottleneck = spec.expandRatio === 1 ? null : this.addModule('inverted_bottleneck', new ConvBnAct(inChannels, midChannels, 1, 1, act, rng));
    this.depthConv = this.addModule('depth_conv', new ConvBnAct(midChannels, midChannels, kernel, stride, act, rng, { depthwise: true, seMid: spec.seMid }));
    this.pointLinear = this.addModule('point_linear', new ConvBnAct(midChannels, outChannels, 1, 1, null, rng));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.invertedBottleneck ? this.invertedBottleneck.forward(x, training) : x;
      h = this.depthConv.forward(h, training);
      return this.pointLinear.forward(h, training);
    });
  }
}

/** OFA's ResidualBlock: conv(x) (+ x when the block keeps shape). */
export class OfaResidualBlock extends Module {
  readonly conv: MBConvLayer;
  constructor(
    readonly spec: OfaBlockSpec,
    rng: Rng,
  ) {
    super();
    this.conv = this.addModule('conv', new MBConvLayer(spec, rng));
  }
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    return tf.tidy(() => {
      const y = this.conv.forward(x, training);
      return this.spec.residual ? (y.add(x) as tf.Tensor4D) : y;
    });
  }
}

/** OFA's LinearLayer: dropout (training only) then Linear, weight [out, in] as in PyTorch. */
export class OfaClassifier extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    readonly dropout: number,
    private readonly rng: Rng,
  ) {
    super();
    const linear = this.addModule('linear', new Container());
    // OFA's init_model: Linear weight U(+-1/sqrt(in)), bias zero.
    this.weight = linear.param('weight', [outFeatures, inFeatures], uniformArray(outFeatures * inFeatures, linearBound(inFeatures), rng));
    this.bias = linear.param('bias', [outFeatures], new Float32Array(outFeatures));
  }
  forward(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    return tf.tidy(() => {
      const h = training && this.dropout > 0 ? tf.dropout(x, this.dropout, undefined, this.rng.nextUint32()) : x;
      return tf.matMul(h, this.weight as tf.Tensor2D, false, true).add(this.bias) as tf.Tensor2D;
    });
  }
}

export interface OfaSubnetOptions extends OfaNetOptions {
  /** Classifier dropout rate; default 0.2 (MetaD2A's fine-tuning). */
  dropout?: number;
  /** Source of the initial weights and dropout seeds; defaults to @metad2a/nn's global seeded generator. */
  rng?: Rng;
}

export class OfaSubnet extends Module {
  readonly net: ResolvedOfaNet;
  readonly firstConv: ConvBnAct;
  readonly blocks: OfaResidualBlock[];
  readonly finalExpand: ConvBnAct;
  readonly featureMix: ConvBnAct;
  readonly classifier: OfaClassifier;

  constructor(
    readonly config: OfaConfig,
    options: OfaSubnetOptions = {},
  ) {
    super();
    const rng = options.rng ?? defaultRng();
    this.net = resolveOfaNet(config, options);
    const m = this.net.macro;
    this.firstConv = this.addModule('first_conv', new ConvBnAct(3, m.firstConv, 3, 2, 'h_swish', rng));
    this.blocks = this.net.blocks.map((spec, i) => this.addModule(`blocks.${i}`, new OfaResidualBlock(spec, rng)));
    const last = this.net.blocks[this.net.blocks.length - 1].outChannels;
    this.finalExpand = this.addModule('final_expand_layer', new ConvBnAct(last, m.finalExpand, 1, 1, 'h_swish', rng));
    this.featureMix = this.addModule('feature_mix_layer', new ConvBnAct(m.finalExpand, m.featureMix, 1, 1, 'h_swish', rng, { bn: false }));
    const dropout = options.dropout ?? 0.2;
    if (!(dropout >= 0 && dropout < 1)) throw new ConfigError('dropout', `must be in [0, 1), got ${dropout}`);
    this.classifier = this.addModule('classifier', new OfaClassifier(m.featureMix, this.net.numClasses, dropout, rng));
  }

  /** x: [B, r, r, 3] (NHWC) -> logits [B, numClasses]; `training` selects batch BN statistics and dropout. */
  forward(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    const r = this.net.resolution;
    if (x.rank !== 4 || x.shape[1] !== r || x.shape[2] !== r || x.shape[3] !== 3) throw new ShapeError('OfaSubnet input', [x.shape[0] ?? -1, r, r, 3], x.shape);
    return tf.tidy(() => {
      let h = this.firstConv.forward(x, training);
      for (const b of this.blocks) h = b.forward(h, training);
      h = this.finalExpand.forward(h, training);
      h = tf.mean(h, [1, 2], true) as tf.Tensor4D;
      h = this.featureMix.forward(h, training);
      return this.classifier.forward(h.reshape([h.shape[0], -1]) as tf.Tensor2D, training);
    });
  }

  /** Trainable parameters (BN running statistics excluded): equals ofaCost(config, options).params. */
  numTrainableParameters(): number {
    return this.trainableParameters().reduce((s, v) => s + v.size, 0);
  }
}
