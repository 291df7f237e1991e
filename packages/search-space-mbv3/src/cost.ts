import { ConfigError } from '@metad2a/core';
import { OFA_DEFAULT_RESOLUTION, OFA_NUM_SLOTS, OFA_SLOTS_PER_STAGE, assertOfaConfig, isActiveSlot, type OfaConfig } from './config.js';

export type OfaActivation = 'relu' | 'h_swish';

/** once-for-all's make_divisible: round to the nearest multiple of `divisor`, never more than 10% down. */
export function makeDivisible(v: number, divisor = 8, minValue = divisor): number {
  let out = Math.max(minValue, Math.floor((v + divisor / 2) / divisor) * divisor);
  if (out < 0.9 * v) out += divisor;
  return out;
}

/** The fixed skeleton of OFAMobileNetV3 at a width multiplier (spec 2.2 table; w1.0 is MetaD2A's space). */
export interface OfaMacro {
  widthMult: number;
  /** First 3x3 stride-2 conv output (16 at w1.0). */
  firstConv: number;
  /** First MBConv (k3, e1) output (16 at w1.0). */
  firstBlock: number;
  /** Output channels of the 5 searchable stages ([24, 40, 80, 112, 160] at w1.0). */
  stageWidths: number[];
  stageStrides: number[];
  stageAct: OfaActivation[];
  stageSe: boolean[];
  /** Final expand 1x1 conv (960 at w1.0) and feature mix 1x1 conv after pooling (1280 at w1.0). */
  finalExpand: number;
  featureMix: number;
}

const BASE_STAGE_WIDTH = [16, 16, 24, 40, 80, 112, 160, 960, 1280];

export function ofaMacro(widthMult = 1.0): OfaMacro {
  if (!(widthMult > 0) || !Number.isFinite(widthMult)) throw new ConfigError('widthMult', `must be a positive number, got ${widthMult}`);
  const w = BASE_STAGE_WIDTH.map((b) => makeDivisible(b * widthMult));
  return {
    widthMult,
    firstConv: w[0],
    firstBlock: w[1],
    stageWidths: w.slice(2, 7),
    stageStrides: [2, 2, 2, 1, 2],
    stageAct: ['relu', 'relu', 'h_swish', 'h_swish', 'h_swish'],
    stageSe: [false, true, false, true, true],
    finalExpand: w[7],
    featureMix: w[8],
  };
}

/** One built MBConv block of a subnet, with the feature-map sizes it sees. */
export interface OfaBlockSpec {
  /** 'first' for the fixed first block, else the slot index 0..19. */
  slot: number | 'first';
  /** 0 for the first block, 1..5 for the searchable stages. */
  stage: number;
  inChannels: number;
  outChannels: number;
  /** Width of the depthwise conv: make_divisible(round(in*e), 8); in for the first block (no expansion). */
  midChannels: number;
  expandRatio: number;
  kernel: number;
  stride: number;
  act: OfaActivation;
  se: boolean;
  /** SE bottleneck: make_divisible(mid // 4, 8); 0 without SE. */
  seMid: number;
  /** Identity shortcut (stride 1 and in == out). */
  residual: boolean;
  inSize: number;
  outSize: number;
}

export interface OfaNetOptions {
  /** Input height = width; default the config's r, else 224. */
  resolution?: number;
  /** Classifier outputs; default 1000 (ImageNet, what OFA's and MetaD2A's FLOPs assume). */
  numClasses?: number;
  /** Width multiplier of the supernet; default 1.0 (ofa_mbv3_d234_e346_k357_w1.0). */
  widthMult?: number;
}

export interface ResolvedOfaNet {
  resolution: number;
  numClasses: number;
  macro: OfaMacro;
  /** Size after the first conv, and the blocks in order (first block, then the active slots). */
  stemSize: number;
  blocks: OfaBlockSpec[];
  /** Feature-map size entering the final expand layer. */
  finalSize: number;
}

const outSize = (size: number, stride: number) => Math.floor((size - 1) / stride) + 1;

/** The blocks a config builds, with channels and sizes, as OFAMobileNetV3.get_active_subnet builds them. */
export function resolveOfaNet(cfg: OfaConfig, options: OfaNetOptions = {}): ResolvedOfaNet {
  assertOfaConfig(cfg);
  const resolution = options.resolution ?? cfg.r ?? OFA_DEFAULT_RESOLUTION;
  const numClasses = options.numClasses ?? 1000;
  if (!Number.isInteger(resolution) || resolution < 1) throw new ConfigError('resolution', `must be a positive integer, got ${resolution}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new ConfigError('numClasses', `must be a positive integer, got ${numClasses}`);
  const macro = ofaMacro(options.widthMult ?? 1.0);
  const stemSize = outSize(resolution, 2);
  const blocks: OfaBlockSpec[] = [];
  const c0 = macro.firstConv;
  blocks.push({
    slot: 'first', stage: 0, inChannels: c0, outChannels: macro.firstBlock, midChannels: c0, expandRatio: 1, kernel: 3, stride: 1,
    act: 'relu', se: false, seMid: 0, residual: c0 === macro.firstBlock, inSize: stemSize, outSize: stemSize,
  });
  let cin = macro.firstBlock;
  let size = stemSize;
  for (let i = 0; i < OFA_NUM_SLOTS; i++) {
    if (!isActiveSlot(cfg.d, i)) continue;
    const s = Math.floor(i / OFA_SLOTS_PER_STAGE);
    const first = i % OFA_SLOTS_PER_STAGE === 0;
    const stride = first ? macro.stageStrides[s] : 1;
    const cout = macro.stageWidths[s];
    const mid = makeDivisible(Math.round(cin * cfg.e[i]));
    const se = macro.stageSe[s];
    const o = outSize(size, stride);
    blocks.push({
      slot: i, stage: s + 1, inChannels: cin, outChannels: cout, midChannels: mid, expandRatio: cfg.e[i], kernel: cfg.ks[i], stride,
      act: macro.stageAct[s], se, seMid: se ? makeDivisible(Math.floor(mid / 4)) : 0, residual: stride === 1 && cin === cout, inSize: size, outSize: o,
    });
    cin = cout;
    size = o;
  }
  return { resolution, numClasses, macro, stemSize, blocks, finalSize: size };
}

export interface OfaCost {
  /** Multiply-accumulates as once-for-all counts them (count_net_flops / count_flops_given_config). */
  macs: number;
  /** Trainable parameters (PyTorch's count: conv/linear weights, biases, BN affine; no running stats). */
  params: number;
  /** macs / 1e6: the "MFLOPs" of OFA's net names (flops@595M) and of MetaD2A's `--bound`. */
  mflops: number;
  /** params / 1e6. */
  mparams: number;
}

/**
 * FLOPs and parameters of a subnet. MACs are those of once-for-all's counters: every Conv2d
 * (k*k*cin/groups*cout*Hout*Wout, the SE 1x1 convs on the pooled vector included) and the
 * classifier (in*out); biases, BN, activations, the SE product, pooling and residual additions
 * are free. MetaD2A's evaluation measures with torchprofile, which also counts elementwise
 * products and pooling, so its figure is slightly higher (not modelled here).
 */
export function ofaCost(cfg: OfaConfig, options: OfaNetOptions = {}): OfaCost {
  const net = resolveOfaNet(cfg, options);
  const m = net.macro;
  let macs = 0;
  let params = 0;
  const conv = (cin: number, cout: number, k: number, size: number, groups = 1, bn = true, bias = false) => {
    macs += (k * k * cin * cout * size * size) / groups;
    params += (k * k * cin * cout) / groups + (bn ? 2 * cout : 0) + (bias ? cout : 0);
  };
  conv(3, m.firstConv, 3, net.stemSize);
  for (const b of net.blocks) {
    if (b.expandRatio !== 1) conv(b.inChannels, b.midChannels, 1, b.inSize);
    conv(b.midChannels, b.midChannels, b.kernel, b.outSize, b.midChannels);
    if (b.se) {
      conv(b.midChannels, b.seMid, 1, 1, 1, false, true);
      conv(b.seMid, b.midChannels, 1, 1, 1, false, true);
    }
    conv(b.midChannels, b.outChannels, 1, b.outSize);
  }
  const last = net.blocks[net.blocks.length - 1].outChannels;
  conv(last, m.finalExpand, 1, net.finalSize);
  conv(m.finalExpand, m.featureMix, 1, 1, 1, false);
  macs += m.featureMix * net.numClasses;
  params += m.featureMix * net.numClasses + net.numClasses;
  return { macs, params, mflops: macs / 1e6, mparams: params / 1e6 };
}
