/** Rank statistics used by validation, evaluation and plots. All ignore nothing: inputs must be finite. */

function checkPair(x: ArrayLike<number>, y: ArrayLike<number>, what: string): void {
  if (x.length !== y.length) throw new RangeError(`${what}: length mismatch ${x.length} vs ${y.length}`);
  if (x.length < 2) throw new RangeError(`${what}: need at least 2 values, got ${x.length}`);
}

export function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s / x.length;
}

/** Sample standard deviation (n-1 denominator, like torch.std). */
export function std(x: ArrayLike<number>): number {
  const m = mean(x);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - m) ** 2;
  return Math.sqrt(s / (x.length - 1));
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y, 'pearson');
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return sxy / Math.sqrt(sxx * syy);
}

/** Ranks starting at 1, ties get the average rank (as scipy.stats.rankdata). */
export function ranks(x: ArrayLike<number>): Float64Array {
  const idx = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const r = new Float64Array(x.length);
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]] === x[idx[i]]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y, 'spearman');
  return pearson(ranks(x), ranks(y));
}

/** Kendall's tau-b (handles ties), O(n^2): fine for the few thousand points we compare. */
export function kendall(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y, 'kendall');
  let concordant = 0;
  let discordant = 0;
  let tiesX = 0;
  let tiesY = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(x[i] - x[j]);
      const dy = Math.sign(y[i] - y[j]);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tiesX++;
      else if (dy === 0) tiesY++;
      else if (dx === dy) concordant++;
      else discordant++;
    }
  }
  const denom = Math.sqrt((concordant + discordant + tiesX) * (concordant + discordant + tiesY));
  return denom === 0 ? NaN : (concordant - discordant) / denom;
}

/** Two-sided Student-t critical value at 95% for df degrees of freedom (table + asymptote). */
export function tCritical95(df: number): number {
  const table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
  if (df < 1) return NaN;
  if (df <= 30) return table[df - 1];
  return 1.96 + 2.4 / df; // close to the exact value for df > 30
}

/** Mean, sample std and 95% t-interval half-width, as the original reports "±". */
export function summarize(x: ArrayLike<number>): { mean: number; std: number; ci95: number; n: number } {
  const n = x.length;
  const m = mean(x);
  if (n < 2) return { mean: m, std: 0, ci95: 0, n };
  const s = std(x);
  return { mean: m, std: s, ci95: (tCritical95(n - 1) * s) / Math.sqrt(n), n };
}

export function median(x: ArrayLike<number>): number {
  const s = Array.from(x).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
