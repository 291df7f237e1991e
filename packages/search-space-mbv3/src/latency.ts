import path from 'node:path';
import { ConfigError, InputError } from '@metad2a/core';
import { OFA_DEFAULT_RESOLUTION, OFA_NUM_SLOTS, OFA_SLOTS_PER_STAGE, assertOfaConfig, isActiveSlot, type OfaConfig } from './config.js';
import { ofaMacro } from './cost.js';
import { defaultOfaDataDir, readJsonFile } from './data.js';

/** Resolutions of once-for-all's Samsung Note10 tables (one YAML per resolution). */
export const NOTE10_RESOLUTIONS = [160, 176, 192, 208, 224] as const;
/**
 * once-for-all's LatencyTable hard-codes the w1.2 supernet's widths (24, 32/48/96/136/192,
 * 1152, 1536) when it builds keys from a spec, and the Note10 tables only hold those shapes.
 */
export const NOTE10_WIDTH_MULT = 1.2;

const shape = (s: Array<number>) => s.join('x');

/**
 * The per-layer keys of a subnet, built exactly as once-for-all's
 * LatencyEstimator.predict_network_latency_given_spec builds them: first conv, the fixed first
 * block, each active slot (mid = round(in*e), idskip 0 on a stage's first slot), final expand,
 * pooling, feature mix, logits.
 */
export function mbv3LatencyKeys(cfg: OfaConfig, options: { resolution?: number; widthMult?: number; numClasses?: number } = {}): string[] {
  assertOfaConfig(cfg);
  const r = options.resolution ?? cfg.r ?? OFA_DEFAULT_RESOLUTION;
  const m = ofaMacro(options.widthMult ?? NOTE10_WIDTH_MULT);
  const numClasses = options.numClasses ?? 1000;
  const keys: string[] = [];
  const block = (fin: number, cin: number, fout: number, cout: number, mid: number, ks: number, stride: number, idskip: number, se: boolean, hs: boolean) =>
    keys.push(
      `expanded_conv-input:${shape([fin, fin, cin])}-output:${shape([fout, fout, cout])}-expand:${mid}-kernel:${ks}-stride:${stride}-idskip:${idskip}-se:${se ? 1 : 0}-hs:${hs ? 1 : 0}`,
    );
  let fsize = Math.floor((r + 1) / 2);
  keys.push(`Conv-input:${shape([r, r, 3])}-output:${shape([fsize, fsize, m.firstConv])}`);
  block(fsize, m.firstConv, fsize, m.firstBlock, m.firstConv, 3, 1, 1, false, false);
  let cin = m.firstBlock;
  for (let i = 0; i < OFA_NUM_SLOTS; i++) {
    if (!isActiveSlot(cfg.d, i)) continue;
    const s = Math.floor(i / OFA_SLOTS_PER_STAGE);
    const first = i % OFA_SLOTS_PER_STAGE === 0;
    const stride = first ? m.stageStrides[s] : 1;
    const out = Math.floor((fsize - 1) / stride + 1);
    const cout = m.stageWidths[s];
    block(fsize, cin, out, cout, Math.round(cin * cfg.e[i]), cfg.ks[i], stride, first ? 0 : 1, m.stageSe[s], m.stageAct[s] === 'h_swish');
    fsize = out;
    cin = cout;
  }
  keys.push(`Conv_1-input:${shape([fsize, fsize, cin])}-output:${shape([fsize, fsize, m.finalExpand])}`);
  keys.push(`AvgPool2D-input:${shape([fsize, fsize, m.finalExpand])}-output:${shape([1, 1, m.finalExpand])}`);
  keys.push(`Conv_2-input:${shape([1, 1, m.finalExpand])}-output:${shape([1, 1, m.featureMix])}`);
  keys.push(`Logits-input:${shape([1, 1, m.featureMix])}-output:${numClasses}`);
  return keys;
}

/** One per-layer lookup table (ms per layer key). */
export class LatencyLut {
  constructor(
    readonly file: string,
    readonly entries: ReadonlyMap<string, number>,
  ) {}

  /** Load a once-for-all YAML-turned-JSON table: `{ key: { mean, std, count } }`. */
  static load(file: string): LatencyLut {
    const raw = readJsonFile(file);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new InputError({ file }, 'expected an object of layer keys');
    const entries = new Map<string, number>();
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
      const mean = (v as { mean?: unknown } | null)?.mean;
      if (typeof mean !== 'number' || !Number.isFinite(mean)) throw new InputError({ file, field: k }, `expected { mean: number }, got ${JSON.stringify(v)}`);
      entries.set(k, mean);
    }
    return new LatencyLut(file, entries);
  }

  /** Sum of the keys' means; a key the table lacks is an error naming it. */
  sum(keys: readonly string[]): number {
    let t = 0;
    for (const k of keys) {
      const v = this.entries.get(k);
      if (v === undefined) throw new InputError({ file: this.file, field: k }, 'no such layer in the latency table', 'Note10 tables: w1.2 supernet at 160..224 step 16; i7 table: w1.0/w1.2 at 96..256 step 4');
      t += v;
    }
    return t;
  }
}

/** once-for-all's LatencyTable(device='note10'): one LUT per resolution, latency in ms. */
export class Note10LatencyTable {
  private constructor(private readonly tables: ReadonlyMap<number, LatencyLut>) {}

  static load(dir = defaultOfaDataDir(), resolutions: readonly number[] = NOTE10_RESOLUTIONS): Note10LatencyTable {
    const tables = new Map<number, LatencyLut>();
    for (const r of resolutions) tables.set(r, LatencyLut.load(path.join(dir, `lut_note10_${r}.json`)));
    return new Note10LatencyTable(tables);
  }

  get resolutions(): number[] {
    return [...this.tables.keys()];
  }

  /** The table of one resolution. */
  lutFor(resolution: number): LatencyLut {
    const lut = this.tables.get(resolution);
    if (!lut) throw new ConfigError('resolution', `no Note10 latency table for ${resolution}`, `tables: ${this.resolutions.join(', ')}`);
    return lut;
  }

  /** Predicted Note10 latency (ms) of the w1.2 subnet with this config at resolution r (cfg.r or 224). */
  predict(cfg: OfaConfig, resolution?: number): number {
    const r = resolution ?? cfg.r ?? OFA_DEFAULT_RESOLUTION;
    return this.lutFor(r).sum(mbv3LatencyKeys(cfg, { resolution: r }));
  }
}

/**
 * Per-layer keys of NSGANetV2's Intel i7-8700K table (its utils.look_up_latency): first_conv
 * output at r div 2, blocks at sizes halved with ceil, 'expand' as the ratio, no activation flag,
 * final expand at r halved 5 times, feature mix, classifier. MetaD2A's evaluation code base is
 * NSGANetV2's, so this is the table that fits its (w1.0) subnets; it covers r = 96..256 step 4.
 */
export function mbv3I7LatencyKeys(cfg: OfaConfig, options: { resolution?: number; widthMult?: number; numClasses?: number } = {}): string[] {
  assertOfaConfig(cfg);
  const r = options.resolution ?? cfg.r ?? OFA_DEFAULT_RESOLUTION;
  const m = ofaMacro(options.widthMult ?? 1.0);
  const numClasses = options.numClasses ?? 1000;
  const half = (x: number) => Math.ceil(x / 2);
  const keys: string[] = [];
  const block = (fin: number, cin: number, fout: number, cout: number, e: number, ks: number, stride: number, idskip: boolean, se: boolean) =>
    keys.push(`MBConv-input:${shape([fin, fin, cin])}-output:${shape([fout, fout, cout])}-expand:${e}-kernel:${ks}-stride:${stride}-idskip:${idskip ? 1 : 0}-se:${se ? 1 : 0}`);
  keys.push(`first_conv-input:${shape([r, r, 3])}-output:${shape([Math.floor(r / 2), Math.floor(r / 2), m.firstConv])}`);
  let fsize = half(r);
  block(fsize, m.firstConv, fsize, m.firstBlock, 1, 3, 1, m.firstConv === m.firstBlock, false);
  let cin = m.firstBlock;
  for (let i = 0; i < OFA_NUM_SLOTS; i++) {
    if (!isActiveSlot(cfg.d, i)) continue;
    const s = Math.floor(i / OFA_SLOTS_PER_STAGE);
    const stride = i % OFA_SLOTS_PER_STAGE === 0 ? m.stageStrides[s] : 1;
    const out = stride > 1 ? half(fsize) : fsize;
    const cout = m.stageWidths[s];
    block(fsize, cin, out, cout, cfg.e[i], cfg.ks[i], stride, stride === 1 && cin === cout, m.stageSe[s]);
    fsize = out;
    cin = cout;
  }
  const f = half(half(half(half(half(r)))));
  keys.push(`final_expand_layer-input:${shape([f, f, cin])}-output:${shape([f, f, m.finalExpand])}`);
  keys.push(`feature_mix_layer-input:${shape([1, 1, m.finalExpand])}-output:${shape([1, 1, m.featureMix])}`);
  keys.push(`classifier-input:${m.featureMix}-output:${numClasses}`);
  return keys;
}

/** NSGANetV2's i7-8700K lookup table (lut_nsganetv2_i7-8700K.json), latency in ms. */
export class I7LatencyTable {
  private constructor(readonly lut: LatencyLut) {}

  static load(file = path.join(defaultOfaDataDir(), 'lut_nsganetv2_i7-8700K.json')): I7LatencyTable {
    return new I7LatencyTable(LatencyLut.load(file));
  }

  /** Predicted i7-8700K latency (ms) of the subnet at resolution r (cfg.r or 224), w1.0 unless given. */
  predict(cfg: OfaConfig, options: { resolution?: number; widthMult?: number } = {}): number {
    return this.lut.sum(mbv3I7LatencyKeys(cfg, options));
  }
}
