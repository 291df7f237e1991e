/** Small SVG building blocks: escaping, number formatting, nice axis ticks, scales. */

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Coordinates with two decimals: enough for screens, keeps files small. */
export function fmt(x: number): string {
  const r = Math.round(x * 100) / 100;
  return Object.is(r, -0) ? '0' : String(r);
}

/** A tick label: integers as is, others with just enough digits for the tick step. */
export function tickLabel(v: number, step: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  const decimals = step > 0 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : 2;
  return v.toFixed(decimals);
}

/**
 * "Nice" ticks covering [min, max]: steps of 1, 2 or 5 times a power of ten, about `count` of them.
 * A degenerate range is widened so the axis still has ticks.
 */
export function niceTicks(min: number, max: number, count = 5): { ticks: number[]; step: number; lo: number; hi: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = 0;
    max = 1;
  }
  if (min > max) [min, max] = [max, min];
  if (max - min < 1e-12 * Math.max(1, Math.abs(max))) {
    const pad = Math.abs(max) > 0 ? Math.abs(max) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let k = 0; lo + k * step <= hi + step * 1e-9; k++) ticks.push(Number((lo + k * step).toPrecision(12)));
  return { ticks, step, lo, hi };
}

/** Log-scale ticks: powers of ten inside [min, max] (with 2x and 5x when they span at most two decades). */
export function logTicks(min: number, max: number): { ticks: number[]; lo: number; hi: number } {
  const lo = 10 ** Math.floor(Math.log10(min));
  const hi = 10 ** Math.ceil(Math.log10(max));
  const ticks: number[] = [];
  const decades = Math.round(Math.log10(hi / lo));
  for (let p = lo; p <= hi * (1 + 1e-9); p *= 10) {
    const v = Number(p.toPrecision(12));
    ticks.push(v);
    if (decades <= 2 && p < hi * (1 - 1e-9)) ticks.push(Number((2 * p).toPrecision(12)), Number((5 * p).toPrecision(12)));
  }
  return { ticks, lo, hi };
}

export interface Scale {
  (v: number): number;
  ticks: number[];
  label: (v: number) => string;
}

export function linearScale(min: number, max: number, r0: number, r1: number, tickCount = 5): Scale {
  const { ticks, step, lo, hi } = niceTicks(min, max, tickCount);
  const f = ((v: number) => r0 + ((v - lo) / (hi - lo)) * (r1 - r0)) as Scale;
  f.ticks = ticks;
  f.label = (v) => tickLabel(v, step);
  return f;
}

export function logScale(min: number, max: number, r0: number, r1: number): Scale {
  const { ticks, lo, hi } = logTicks(min, max);
  const a = Math.log10(lo);
  const b = Math.log10(hi);
  const f = ((v: number) => r0 + ((Math.log10(v) - a) / (b - a)) * (r1 - r0)) as Scale;
  f.ticks = ticks;
  f.label = (v) => (v >= 1e-3 && v < 1e5 ? String(Number(v.toPrecision(3))) : v.toExponential(0).replace('e+', 'e'));
  return f;
}

/** A qualitative palette (Tableau 10), distinguishable in print and for most colour-blind readers. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

export function el(name: string, attrs: Record<string, string | number | undefined>, children = ''): string {
  const a = Object.entries(attrs)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${escapeXml(typeof v === 'number' ? fmt(v) : v!)}"`)
    .join('');
  return children === '' ? `<${name}${a}/>` : `<${name}${a}>${children}</${name}>`;
}

export function text(x: number, y: number, s: string, attrs: Record<string, string | number | undefined> = {}): string {
  return el('text', { x, y, ...attrs }, escapeXml(s));
}
