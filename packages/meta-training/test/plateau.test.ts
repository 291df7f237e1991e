import { describe, expect, it } from 'vitest';
import { ReduceLROnPlateau } from '../src/index.js';

// Every expected sequence below is derived by hand from torch.optim.lr_scheduler.ReduceLROnPlateau's
// step(): is_better (rel: a < best * (1 - threshold)), num_bad_epochs > patience -> lr = max(lr *
// factor, min_lr) if the change exceeds eps, then cooldown.
function run(s: ReduceLROnPlateau, metrics: number[]): { lrs: number[]; reduced: number[] } {
  const lrs: number[] = [];
  const reduced: number[] = [];
  metrics.forEach((m, i) => {
    if (s.step(m)) reduced.push(i + 1);
    lrs.push(s.lr);
  });
  return { lrs, reduced };
}

describe('ReduceLROnPlateau (PyTorch semantics)', () => {
  it('has the original defaults', () => {
    const s = new ReduceLROnPlateau(1e-4);
    expect([s.mode, s.factor, s.patience, s.threshold, s.thresholdMode, s.cooldown, s.minLr, s.eps]).toEqual(['min', 0.1, 10, 1e-4, 'rel', 0, 0, 1e-8]);
  });

  it('reduces after more than `patience` bad epochs; improvements under the relative threshold are bad', () => {
    // patience 2: 10 and 9 improve; three 9s are bad -> reduce at step 5. 8.9995 is not < 9 * (1 - 1e-4) = 8.9991,
    // so it is bad too -> reduce again at step 8. 1 improves.
    const s = new ReduceLROnPlateau(1, { patience: 2 });
    const { lrs, reduced } = run(s, [10, 9, 9, 9, 9, 8.9995, 8.9995, 8.9995, 1]);
    expect(reduced).toEqual([5, 8]);
    expect(lrs.map((x) => Number(x.toPrecision(12)))).toEqual([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01]);
    expect(s.best).toBe(1);
    expect(s.lastEpoch).toBe(9);
  });

  it('ignores bad epochs during cooldown and stops at min_lr (change must exceed eps)', () => {
    const s = new ReduceLROnPlateau(1, { patience: 1, cooldown: 2, minLr: 0.05 });
    const { lrs, reduced } = run(s, new Array(11).fill(5));
    // step 1 improves (from inf); 2: bad 1; 3: bad 2 > 1 -> 0.1, cooldown 2; 4, 5: in cooldown (bad reset);
    // 6: bad 1; 7: bad 2 -> max(0.01, 0.05) = 0.05; 8, 9 cooldown; 10 bad 1; 11 bad 2 -> max(0.005, 0.05) = 0.05: no change
    expect(reduced).toEqual([3, 7]);
    expect(lrs).toEqual([1, 1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05]);
  });

  it('counts NaN as a bad epoch', () => {
    const s = new ReduceLROnPlateau(1, { patience: 0 });
    expect(s.step(NaN)).toBe(true);
    expect(s.lr).toBeCloseTo(0.1, 15);
    expect(s.best).toBe(Infinity);
  });

  it("keeps PyTorch's rel-mode quirk for negative metrics (an equal value counts as better)", () => {
    // best = -10: -10 < -10 * (1 - 1e-4) = -9.999 is true, so repeating -10 never plateaus
    const s = new ReduceLROnPlateau(1, { patience: 0 });
    expect(run(s, [-10, -10, -10]).reduced).toEqual([]);
    expect(s.numBadEpochs).toBe(0);
  });

  it('supports max mode and abs thresholds', () => {
    // max/abs 0.5: 1 > -inf + 0.5 better; 1.4 > 1.5? no -> bad (patience 0) -> reduce; 2 > 1.5 better
    const s = new ReduceLROnPlateau(1, { mode: 'max', thresholdMode: 'abs', threshold: 0.5, patience: 0, factor: 0.5 });
    const { lrs, reduced } = run(s, [1, 1.4, 2]);
    expect(reduced).toEqual([2]);
    expect(lrs).toEqual([1, 0.5, 0.5]);
    expect(s.best).toBe(2);
    // min/abs 0.5: 10 better; 9.6 < 9.5? no -> bad
    const m = new ReduceLROnPlateau(1, { thresholdMode: 'abs', threshold: 0.5, patience: 0 });
    expect(run(m, [10, 9.6, 9.4]).reduced).toEqual([2]);
  });

  it('does not reduce below eps differences', () => {
    const s = new ReduceLROnPlateau(1e-8, { patience: 0 });
    s.step(1);
    expect(s.step(1)).toBe(false); // 1e-8 - 1e-9 = 9e-9 <= eps 1e-8
    expect(s.lr).toBe(1e-8);
  });

  it('saves and restores its state through JSON (Infinity best included)', () => {
    const a = new ReduceLROnPlateau(1, { patience: 1, cooldown: 1 });
    const b = new ReduceLROnPlateau(1, { patience: 1, cooldown: 1 });
    b.loadState(JSON.parse(JSON.stringify(a.state())));
    expect(b.best).toBe(Infinity);
    const seq = [3, 3, 3, 2, 2, 2, 2, 1];
    run(a, seq.slice(0, 3));
    const c = new ReduceLROnPlateau(1, { patience: 1, cooldown: 1 });
    c.loadState(JSON.parse(JSON.stringify(a.state())));
    expect(run(c, seq.slice(3))).toEqual(run(a, seq.slice(3)));
    expect(c.state()).toEqual(a.state());
  });

  it('rejects a factor >= 1 like PyTorch', () => {
    expect(() => new ReduceLROnPlateau(1, { factor: 1 })).toThrow(/scheduler.factor/);
  });
});
