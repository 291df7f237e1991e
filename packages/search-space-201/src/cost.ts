import { ConfigError } from '@metad2a/core';
import type { Nb201Arch, Nb201Op } from './ops.js';

/** Shape of the NB201 macro network (the benchmark's TinyNetwork). */
export interface Nb201NetConfig {
  /** Channels of the first stage (stages use C, 2C, 4C). Benchmark: 16. */
  C: number;
  /** Cells per stage. Benchmark: 5. */
  N: number;
  /** Input height = width. CIFAR: 32, ImageNet16-120: 16. */
  inputSize: number;
  /** Classes of the linear head. CIFAR-10: 10, CIFAR-100: 100, ImageNet16-120: 120. */
  numClasses: number;
  /** Input channels (3 for RGB). */
  inChannels: number;
}

export const NB201_DEFAULT_NET: Nb201NetConfig = { C: 16, N: 5, inputSize: 32, numClasses: 10, inChannels: 3 };

export interface Nb201Cost {
  /** FLOPs as NB201 counts them (multiply-adds of convs and the linear layer incl. its bias), in millions. */
  flops: number;
  /** Trainable parameters in millions ("MB" in the benchmark, 1e6). */
  params: number;
  flopsCount: number;
  paramCount: number;
}

export function resolveNetConfig(options: Partial<Nb201NetConfig> = {}): Nb201NetConfig {
  const cfg = { ...NB201_DEFAULT_NET, ...options };
  for (const key of ['C', 'N', 'inputSize', 'numClasses', 'inChannels'] as const) {
    const v = cfg[key];
    if (!Number.isInteger(v) || v < (key === 'N' ? 0 : 1)) throw new ConfigError(key, `must be a ${key === 'N' ? 'non-negative' : 'positive'} integer, got ${v}`);
  }
  // Two stride-2 reductions whose conv path and avg-pool shortcut must agree in size.
  if (cfg.inputSize % 4 !== 0) throw new ConfigError('inputSize', `must be divisible by 4, got ${cfg.inputSize}`);
  return cfg;
}

const convOut = (size: number, k: number, stride: number, pad: number) => Math.floor((size + 2 * pad - k) / stride) + 1;

/** Conv2d (no bias) FLOPs and weight count; BN adds 2*cout affine parameters, no FLOPs. */
function conv(cin: number, cout: number, k: number, outSize: number): { flops: number; params: number } {
  return { flops: k * k * cin * cout * outSize * outSize, params: k * k * cin * cout };
}

/** One cell edge at c channels and spatial size s. Pooling FLOPs are not counted by NB201. */
function edgeCost(op: Nb201Op, c: number, s: number): { flops: number; params: number } {
  switch (op) {
    case 'nor_conv_3x3': {
      const x = conv(c, c, 3, s);
      return { flops: x.flops, params: x.params + 2 * c };
    }
    case 'nor_conv_1x1': {
      const x = conv(c, c, 1, s);
      return { flops: x.flops, params: x.params + 2 * c };
    }
    default:
      return { flops: 0, params: 0 };
  }
}

/**
 * FLOPs and parameters of the cell network, derived from the macro skeleton (spec §5.2), counted
 * the way NB201's `get_model_infos` counts: Conv2d k*k*Cin*Cout*Hout*Wout, Linear in*out + out;
 * BN, ReLU, pooling and additions are free. Every edge's op is built and run, also on paths that
 * do not reach the output, so the cost depends only on how many conv edges there are.
 */
export function nb201Cost(arch: Nb201Arch, options: Partial<Nb201NetConfig> = {}): Nb201Cost {
  const cfg = resolveNetConfig(options);
  let flops = 0;
  let params = 0;
  const add = (x: { flops: number; params: number }) => {
    flops += x.flops;
    params += x.params;
  };
  let s = cfg.inputSize;
  let c = cfg.C;
  // stem: conv3x3 in->C + BN
  add(conv(cfg.inChannels, c, 3, s));
  params += 2 * c;
  for (let stage = 0; stage < 3; stage++) {
    if (stage > 0) {
      // ResNet basic block, stride 2: ReLUConvBN 3x3 s2, ReLUConvBN 3x3, shortcut AvgPool2 + conv1x1.
      const cout = c * 2;
      const so = convOut(s, 3, 2, 1);
      add(conv(c, cout, 3, so));
      params += 2 * cout;
      add(conv(cout, cout, 3, so));
      params += 2 * cout;
      add(conv(c, cout, 1, Math.floor(s / 2)));
      c = cout;
      s = so;
    }
    for (let cell = 0; cell < cfg.N; cell++) for (const op of arch) add(edgeCost(op, c, s));
  }
  params += 2 * c; // lastact BN
  add({ flops: c * cfg.numClasses + cfg.numClasses, params: c * cfg.numClasses + cfg.numClasses });
  return { flops: flops / 1e6, params: params / 1e6, flopsCount: flops, paramCount: params };
}
