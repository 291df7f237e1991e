import { describe, expect, it } from 'vitest';
import { enumerateNb201, nb201Cost, parseNb201, type Nb201Arch } from '../src/index.js';

const ALL_CONV3: Nb201Arch = Array(6).fill('nor_conv_3x3');
const ALL_NONE: Nb201Arch = Array(6).fill('none');
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('analytic FLOPs and params of the NB201 network (C=16, N=5)', () => {
  it('match the published NB201 numbers for CIFAR-10 within 1e-3', () => {
    const big = nb201Cost(ALL_CONV3);
    expect(rel(big.params, 1.531546)).toBeLessThan(1e-3);
    expect(rel(big.flops, 220.11)).toBeLessThan(1e-3);
    const small = nb201Cost(ALL_NONE);
    expect(rel(small.params, 0.073306)).toBeLessThan(1e-3);
    expect(rel(small.flops, 7.78305)).toBeLessThan(1e-3);
  });

  it('match a layer-by-layer count done by hand', () => {
    // stem 3*16*9 + BN 32; per stage a conv3x3 edge is C*C*9 + 2C; reductions:
    // 16->32: 16*32*9+64 + 32*32*9+64 + 16*32; 32->64: 32*64*9+128 + 64*64*9+128 + 32*64;
    // lastact BN 128; classifier 64*10+10.
    const fixed = 464 + (4672 + 9280 + 512) + (18560 + 36992 + 2048) + 128 + 650;
    expect(fixed).toBe(73306);
    expect(nb201Cost(ALL_NONE).paramCount).toBe(fixed);
    expect(nb201Cost(ALL_CONV3).paramCount).toBe(fixed + 30 * (2336 + 9280 + 36992));
    // FLOPs: conv k*k*Cin*Cout*H*W, linear 64*10+10; pooling not counted.
    const fixedFlops = 1024 * 432 + 256 * (4608 + 9216 + 512) + 64 * (18432 + 36864 + 2048) + 650;
    expect(nb201Cost(ALL_NONE).flopsCount).toBe(fixedFlops);
    expect(nb201Cost(ALL_CONV3).flopsCount).toBe(fixedFlops + 30 * (1024 * 2304 + 256 * 9216 + 64 * 36864));
    expect(nb201Cost(ALL_CONV3).flopsCount).toBe(220119690);
    // One 1x1 conv edge: C*C + 2C params and C*C*H*W FLOPs in each of the 15 cells.
    const one = parseNb201('|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|');
    expect(nb201Cost(one).paramCount - fixed).toBe(5 * (16 * 16 + 32) + 5 * (32 * 32 + 64) + 5 * (64 * 64 + 128));
    expect(nb201Cost(one).flopsCount - fixedFlops).toBe(5 * 1024 * 256 + 5 * 256 * 1024 + 5 * 64 * 4096);
    // Pool and skip edges are free.
    expect(nb201Cost(parseNb201('|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|')).paramCount).toBe(fixed);
  });

  it('scales the head and the resolution for CIFAR-100 and ImageNet16-120', () => {
    const c100 = nb201Cost(ALL_CONV3, { numClasses: 100 });
    expect(c100.paramCount).toBe(1531546 - 650 + 6500);
    const inet = nb201Cost(ALL_CONV3, { numClasses: 120, inputSize: 16 });
    expect(inet.paramCount).toBe(1531546 - 650 + 7800);
    // Every conv sees a quarter of the positions at 16x16.
    expect(inet.flopsCount).toBe((220119690 - 650) / 4 + 7800);
    expect(() => nb201Cost(ALL_CONV3, { inputSize: 30 })).toThrow(/divisible by 4/);
  });

  it('spans 0.073306..1.531546 MB over all 15,625 cells', () => {
    let min = Infinity;
    let max = -Infinity;
    let atMin = 0;
    for (const arch of enumerateNb201()) {
      const p = nb201Cost(arch).params;
      if (p < min) [min, atMin] = [p, 0];
      if (p === min) atMin++;
      max = Math.max(max, p);
    }
    expect(max).toBe(1.531546);
    expect(min).toBe(0.073306);
    // Cells without any conv edge: 3 choices (none, skip, pool) on each of 6 edges.
    expect(atMin).toBe(3 ** 6);
  });
});
