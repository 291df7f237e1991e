import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError, spearman } from '@metad2a/core';
import { I7LatencyTable, Note10LatencyTable, defaultOfaDataDir, mbv3I7LatencyKeys, loadHelpOfaArchs, makeDivisible, mbv3LatencyKeys, ofaCost, ofaMacro, resolveOfaNet, type OfaConfig } from '../src/index.js';

interface PublishedNet extends OfaConfig {
  name: string;
  r: number;
  stage_out_channels: number[];
  first_conv_out: number;
  feature_mix_out: number;
}

const dir = defaultOfaDataDir();
const published = (JSON.parse(fs.readFileSync(path.join(dir, 'ofa_specialized_nets.json'), 'utf8')) as { nets: PublishedNet[] }).nets;
/** Published nets write 0 in unused slots; any allowed value stands in for them. */
const asConfig = (n: PublishedNet): OfaConfig => ({
  ks: n.ks.map((v) => v || 3),
  e: n.e.map((v) => v || 3),
  d: n.d,
  r: n.r,
});

const LARGEST: OfaConfig = { ks: Array(20).fill(7), e: Array(20).fill(6), d: Array(5).fill(4) };
const SMALLEST: OfaConfig = { ks: Array(20).fill(3), e: Array(20).fill(3), d: Array(5).fill(2) };

describe('macro', () => {
  it('matches the spec table at w1.0 and the published w1.2 nets', () => {
    expect(makeDivisible(19.2)).toBe(24);
    expect(makeDivisible(134.4)).toBe(136);
    const m10 = ofaMacro(1.0);
    expect([m10.firstConv, m10.firstBlock, ...m10.stageWidths, m10.finalExpand, m10.featureMix]).toEqual([16, 16, 24, 40, 80, 112, 160, 960, 1280]);
    const w12 = published.filter((n) => n.name.startsWith('flops-'));
    expect(w12.length).toBe(3);
    const m12 = ofaMacro(1.2);
    for (const n of w12) {
      expect(m12.stageWidths).toEqual(n.stage_out_channels);
      expect(m12.firstConv).toBe(n.first_conv_out);
      expect(m12.featureMix).toBe(n.feature_mix_out);
    }
    expect(() => ofaMacro(0)).toThrow(ConfigError);
  });

  it('lists the built blocks with sizes, strides, SE and shortcuts', () => {
    const net = resolveOfaNet({ ...SMALLEST, e: SMALLEST.e.map((_, i) => (i === 4 ? 6 : 3)) }, { resolution: 224 });
    expect(net.blocks.length).toBe(11);
    expect(net.stemSize).toBe(112);
    expect(net.finalSize).toBe(7);
    const b = net.blocks[3]; // stage 2, first block: 24 -> 40, e=6 -> mid 144, stride 2, SE mid 144 // 4 = 36 -> 40
    expect([b.slot, b.inChannels, b.midChannels, b.outChannels, b.stride, b.se, b.seMid, b.residual, b.inSize, b.outSize]).toEqual([4, 24, 144, 40, 2, true, 40, false, 56, 28]);
    expect(net.blocks.map((x) => x.outSize)).toEqual([112, 56, 56, 28, 28, 14, 14, 14, 14, 7, 7]);
    expect(net.blocks.map((x) => x.residual)).toEqual([true, false, true, false, true, false, true, false, true, false, true]);
  });
});

describe('FLOPs and parameters', () => {
  it('reproduce the published OFA flops@389M/482M/595M nets (w1.2)', () => {
    const w12 = published.filter((n) => n.name.startsWith('flops-'));
    for (const n of w12) {
      const stated = Number(/flops-(\d+)M/.exec(n.name)![1]);
      const { mflops } = ofaCost(asConfig(n), { widthMult: 1.2 });
      // names carry whole MFLOPs: 389.49, 482.41, 595.19 here
      expect(Math.floor(mflops)).toBe(stated);
    }
  });

  it('equal an independent python count for w1.0 subnets (MACs, params)', () => {
    // Expected values from a separate python3 re-derivation (written apart from this code) of
    // once-for-all's count_flops_given_config and PyTorch's numel over the subnet's modules.
    expect(ofaCost(LARGEST)).toMatchObject({ macs: 566170656, params: 7664760 });
    expect(ofaCost(SMALLEST)).toMatchObject({ macs: 121278672, params: 3410792 });
    expect(ofaCost(LARGEST, { widthMult: 1.2 })).toMatchObject({ macs: 843101040, params: 10701632 });
    expect(ofaCost(SMALLEST, { resolution: 32, numClasses: 10 })).toMatchObject({ macs: 3935184, params: 2142602 });
    const random0: OfaConfig = {
      ks: [7, 5, 5, 3, 3, 3, 3, 3, 3, 7, 5, 7, 5, 5, 7, 7, 5, 5, 5, 7],
      e: [3, 6, 6, 3, 4, 6, 4, 3, 6, 6, 6, 3, 3, 6, 3, 4, 3, 3, 4, 4],
      d: [3, 2, 2, 2, 2],
      r: 208,
    };
    expect(ofaCost(random0)).toMatchObject({ macs: 199633488, params: 3818952 });
    expect(ofaCost(random0, { resolution: 64, numClasses: 10 })).toMatchObject({ macs: 20082624, params: 2550762 });
  });

  it('scale with the head and resolution as counted', () => {
    const a = ofaCost(LARGEST, { numClasses: 1000 });
    const b = ofaCost(LARGEST, { numClasses: 10 });
    expect(a.macs - b.macs).toBe(1280 * 990);
    expect(a.params - b.params).toBe(1281 * 990);
    expect(ofaCost(LARGEST, { resolution: 160 }).params).toBe(a.params);
    // inactive slots do not count
    expect(ofaCost({ ...SMALLEST, ks: Array(20).fill(7).map((v, i) => (i % 4 < 2 ? 3 : v)) }).macs).toBe(ofaCost(SMALLEST).macs);
  });

  it('rank the HELP subnets like their measured GPU latency', () => {
    const help = loadHelpOfaArchs();
    const macs = help.archs.map((a) => ofaCost(a).macs);
    // batch-64 GPU latency is compute-bound: MACs at each subnet's own r order it (0.994 measured)
    expect(spearman(macs, help.latencyMs.titan_rtx_64)).toBeGreaterThan(0.95);
    expect(spearman(macs, help.latencyMs.v100_64)).toBeGreaterThan(0.95);
  });
});

describe('Note10 latency lookup table', () => {
  const table = Note10LatencyTable.load();

  it('builds once-for-all LatencyTable keys', () => {
    const keys = mbv3LatencyKeys(SMALLEST, { resolution: 224 });
    expect(keys.length).toBe(2 + 10 + 4);
    expect(keys[0]).toBe('Conv-input:224x224x3-output:112x112x24');
    expect(keys[1]).toBe('expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0');
    expect(keys[2]).toBe('expanded_conv-input:112x112x24-output:56x56x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0');
    expect(keys[5]).toBe('expanded_conv-input:28x28x48-output:28x28x48-expand:144-kernel:3-stride:1-idskip:1-se:1-hs:0');
    expect(keys.slice(-4)).toEqual([
      'Conv_1-input:7x7x192-output:7x7x1152',
      'AvgPool2D-input:7x7x1152-output:1x1x1152',
      'Conv_2-input:1x1x1152-output:1x1x1536',
      'Logits-input:1x1x1536-output:1000',
    ]);
  });

  it('finds every layer of every subnet at its resolutions and predicts the published Note10 net', () => {
    const help = loadHelpOfaArchs();
    for (const r of table.resolutions) for (const a of help.archs.slice(0, 300)) expect(table.predict(a, r)).toBeGreaterThan(0);
    // OFA's 'note10_lat-30ms' specialised net (w1.2, r=224): the table's sum should be about 30 ms
    const n = published.find((x) => x.name.startsWith('note10_lat-30ms'))!;
    expect(Math.abs(table.predict(asConfig(n)) - 30)).toBeLessThan(0.5);
    // hand-summed from lut_note10_224.json: 'Conv' + first block + 'Conv_1' + 'AvgPool2D' + 'Conv_2' + 'Logits'
    const fixed = 0.994418 + 1.772802 + 0.694356 + 0.015270707070707077 + 0.762458 + 0.669412;
    const lut = JSON.parse(fs.readFileSync(path.join(dir, 'lut_note10_224.json'), 'utf8')) as Record<string, { mean: number }>;
    const blocks = mbv3LatencyKeys(LARGEST).slice(2, -4).reduce((s, k) => s + lut[k].mean, 0);
    expect(table.predict(LARGEST)).toBeCloseTo(fixed + blocks, 9);
  });

  it('says which key or resolution is missing', () => {
    expect(() => table.predict(SMALLEST, 200)).toThrow(/no Note10 latency table for 200.*160, 176, 192, 208, 224/);
    try {
      table.lutFor(224).sum(mbv3LatencyKeys(SMALLEST, { widthMult: 1.0 }));
      throw new Error('expected a missing key');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as Error).message).toMatch(/lut_note10_224\.json, field 'Conv-input:224x224x3-output:112x112x16': no such layer/);
    }
  });
});

describe('NSGANetV2 i7-8700K lookup table', () => {
  const i7 = I7LatencyTable.load();

  it('builds NSGANetV2 look_up_latency keys', () => {
    const keys = mbv3I7LatencyKeys(SMALLEST, { resolution: 220 });
    expect(keys[0]).toBe('first_conv-input:220x220x3-output:110x110x16');
    expect(keys[1]).toBe('MBConv-input:110x110x16-output:110x110x16-expand:1-kernel:3-stride:1-idskip:1-se:0');
    expect(keys[2]).toBe('MBConv-input:110x110x16-output:55x55x24-expand:3-kernel:3-stride:2-idskip:0-se:0');
    // ceil halving: 55 -> 28 -> 14 -> 7
    expect(keys[4]).toBe('MBConv-input:55x55x24-output:28x28x40-expand:3-kernel:3-stride:2-idskip:0-se:1');
    expect(keys.slice(-3)).toEqual([
      'final_expand_layer-input:7x7x160-output:7x7x960',
      'feature_mix_layer-input:1x1x960-output:1x1x1280',
      'classifier-input:1280-output:1000',
    ]);
  });

  it('covers every HELP subnet (w1.0, r 128..224) and orders them like their MACs', () => {
    const help = loadHelpOfaArchs();
    const lat = help.archs.map((a) => i7.predict(a));
    expect(lat.every((v) => v > 0)).toBe(true);
    expect(spearman(lat, help.archs.map((a) => ofaCost(a).macs))).toBeGreaterThan(0.9);
    expect(() => i7.predict(SMALLEST, { resolution: 300 })).toThrow(/first_conv-input:300x300x3/);
  });
});
