import { kendall, spearman } from '@metad2a/core';
import { PALETTE, el, escapeXml, fmt, linearScale, logScale, text, type Scale } from './svg.js';

export interface PlotFrameOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixel size of the whole SVG (default 640 x 400). */
  width?: number;
  height?: number;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(o: PlotFrameOptions, legendRows = 0): Frame {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  return { width, height, left: 64, right: width - 16 - (legendRows > 0 ? 150 : 0), top: o.title ? 36 : 16, bottom: height - 48 };
}

/** Axes, grid, ticks and labels; every element carries a class so tests and stylesheets can find it. */
function axes(f: Frame, x: Scale, y: Scale, o: PlotFrameOptions): string {
  const parts: string[] = [];
  for (const t of y.ticks) {
    const py = y(t);
    parts.push(el('line', { class: 'grid', x1: f.left, x2: f.right, y1: py, y2: py, stroke: '#e5e5e5' }));
    parts.push(text(f.left - 6, py + 4, y.label(t), { class: 'tick y-tick', 'text-anchor': 'end' }));
  }
  for (const t of x.ticks) {
    const px = x(t);
    parts.push(el('line', { class: 'grid', x1: px, x2: px, y1: f.top, y2: f.bottom, stroke: '#f0f0f0' }));
    parts.push(text(px, f.bottom + 16, x.label(t), { class: 'tick x-tick', 'text-anchor': 'middle' }));
  }
  parts.push(el('rect', { class: 'plot-area', x: f.left, y: f.top, width: f.right - f.left, height: f.bottom - f.top, fill: 'none', stroke: '#333' }));
  if (o.title) parts.push(text(f.width / 2, 22, o.title, { class: 'title', 'text-anchor': 'middle', 'font-size': 15, 'font-weight': 'bold' }));
  if (o.xLabel) parts.push(text((f.left + f.right) / 2, f.height - 10, o.xLabel, { class: 'x-label', 'text-anchor': 'middle' }));
  if (o.yLabel) {
    const cy = (f.top + f.bottom) / 2;
    parts.push(text(16, cy, o.yLabel, { class: 'y-label', 'text-anchor': 'middle', transform: `rotate(-90 16 ${fmt(cy)})` }));
  }
  return parts.join('');
}

function svgDoc(width: number, height: number, body: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="sans-serif" font-size="12">` +
    el('rect', { width, height, fill: 'white' }) +
    body +
    '</svg>\n'
  );
}

function legend(f: Frame, items: Array<{ name: string; color: string; dashed?: boolean; marker?: boolean }>): string {
  const x0 = f.right + 12;
  return el(
    'g',
    { class: 'legend' },
    items
      .map((it, i) => {
        const y = f.top + 10 + i * 18;
        const mark = it.marker
          ? el('circle', { cx: x0 + 10, cy: y, r: 4, fill: it.color })
          : el('line', { x1: x0, x2: x0 + 20, y1: y, y2: y, stroke: it.color, 'stroke-width': 2, 'stroke-dasharray': it.dashed ? '5 3' : undefined });
        return el('g', { class: 'legend-item' }, mark + text(x0 + 26, y + 4, it.name));
      })
      .join(''),
  );
}

function extent(values: number[], positiveOnly: boolean): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || (positiveOnly && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : positiveOnly ? [1, 10] : [0, 1];
}

export interface LineSeries {
  name: string;
  x: readonly number[];
  y: readonly number[];
  color?: string;
  dashed?: boolean;
}

export interface LinePlotOptions extends PlotFrameOptions {
  series: readonly LineSeries[];
  /** Logarithmic y axis (losses); non-positive values are left out. */
  logY?: boolean;
  /** Mark each point with a dot as well (default: only when a series has <= 40 points). */
  markers?: boolean;
}

/**
 * Line plot of one or more series with axis ticks and a legend. Non-finite values (and, on a log
 * axis, non-positive ones) break the line instead of distorting the axes.
 */
export function linePlot(o: LinePlotOptions): string {
  if (o.series.length === 0) throw new RangeError('linePlot: no series');
  for (const s of o.series) if (s.x.length !== s.y.length) throw new RangeError(`linePlot: series '${s.name}' has ${s.x.length} x and ${s.y.length} y values`);
  const f = frame(o, o.series.length);
  const [x0, x1] = extent(o.series.flatMap((s) => [...s.x]), false);
  const [y0, y1] = extent(o.series.flatMap((s) => [...s.y]), Boolean(o.logY));
  const x = linearScale(x0, x1, f.left, f.right, 6);
  const y = o.logY ? logScale(y0, y1, f.bottom, f.top) : linearScale(y0, y1, f.bottom, f.top, 5);
  const ok = (v: number) => Number.isFinite(v) && (!o.logY || v > 0);
  const body: string[] = [axes(f, x, y, o)];
  o.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    let d = '';
    let pen = false;
    const dots: string[] = [];
    const markers = o.markers ?? s.x.length <= 40;
    for (let k = 0; k < s.x.length; k++) {
      if (!ok(s.x[k]) || !ok(s.y[k])) {
        pen = false;
        continue;
      }
      const px = x(s.x[k]);
      const py = y(s.y[k]);
      d += `${pen ? 'L' : 'M'}${fmt(px)} ${fmt(py)}`;
      pen = true;
      if (markers) dots.push(el('circle', { class: 'point', cx: px, cy: py, r: 2.5, fill: color }));
    }
    body.push(
      el(
        'g',
        { class: 'series', 'data-name': s.name },
        (d ? el('path', { class: 'line', d, fill: 'none', stroke: color, 'stroke-width': 2, 'stroke-dasharray': s.dashed ? '6 4' : undefined }) : '') + dots.join(''),
      ),
    );
  });
  body.push(legend(f, o.series.map((s, i) => ({ name: s.name, color: s.color ?? PALETTE[i % PALETTE.length], dashed: s.dashed }))));
  return svgDoc(f.width, f.height, body.join(''));
}

export interface ScatterPoint {
  x: number;
  y: number;
  label?: string;
}

export interface ScatterPlotOptions extends PlotFrameOptions {
  points: readonly ScatterPoint[];
  /** Print Spearman's rho and Kendall's tau of (x, y) in the corner. */
  correlation?: boolean;
  /** Draw the y = x diagonal (predicted vs true on one scale). */
  diagonal?: boolean;
  color?: string;
}

/** Scatter plot; with `correlation`, annotated with Spearman and Kendall rank correlations. */
export function scatterPlot(o: ScatterPlotOptions): string {
  const f = frame(o);
  const pts = o.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  let [x0, x1] = extent(pts.map((p) => p.x), false);
  let [y0, y1] = extent(pts.map((p) => p.y), false);
  if (o.diagonal) {
    x0 = y0 = Math.min(x0, y0);
    x1 = y1 = Math.max(x1, y1);
  }
  const x = linearScale(x0, x1, f.left, f.right, 6);
  const y = linearScale(y0, y1, f.bottom, f.top, 5);
  const color = o.color ?? PALETTE[0];
  const body: string[] = [axes(f, x, y, o)];
  if (o.diagonal) {
    const a = Math.max(x.ticks[0], y.ticks[0]);
    const b = Math.min(x.ticks[x.ticks.length - 1], y.ticks[y.ticks.length - 1]);
    body.push(el('line', { class: 'diagonal', x1: x(a), y1: y(a), x2: x(b), y2: y(b), stroke: '#999', 'stroke-dasharray': '4 4' }));
  }
  body.push(
    el(
      'g',
      { class: 'points' },
      pts.map((p) => el('circle', { class: 'point', cx: x(p.x), cy: y(p.y), r: 3, fill: color, 'fill-opacity': 0.7 }, p.label ? el('title', {}, escapeXml(p.label)) : '')).join(''),
    ),
  );
  if (o.correlation && pts.length >= 2) {
    const xs = pts.map((p) => p.x);
    const ys = pts.map((p) => p.y);
    const note = `Spearman ρ = ${spearman(xs, ys).toFixed(3)}   Kendall τ = ${kendall(xs, ys).toFixed(3)}   n = ${pts.length}`;
    body.push(text(f.left + 8, f.top + 16, note, { class: 'annotation' }));
  }
  return svgDoc(f.width, f.height, body.join(''));
}

export interface ParetoPoint {
  /** Cost, lower is better (FLOPs, params, latency). */
  cost: number;
  /** Quality, higher is better (accuracy). */
  accuracy: number;
  label?: string;
}

/**
 * Indices of the non-dominated points (minimise cost, maximise accuracy), sorted by cost. A point is
 * dominated when another is no worse in both and strictly better in one; exact duplicates all stay.
 */
export function paretoFront(points: readonly ParetoPoint[]): number[] {
  const idx = points.map((_, i) => i).filter((i) => Number.isFinite(points[i].cost) && Number.isFinite(points[i].accuracy));
  idx.sort((a, b) => points[a].cost - points[b].cost || points[b].accuracy - points[a].accuracy);
  const front: number[] = [];
  let best = -Infinity;
  let lastCost = NaN;
  let lastAcc = NaN;
  for (const i of idx) {
    const p = points[i];
    if (p.accuracy > best || (p.accuracy === lastAcc && p.cost === lastCost)) {
      front.push(i);
      if (p.accuracy > best) {
        best = p.accuracy;
        lastCost = p.cost;
        lastAcc = p.accuracy;
      }
    }
  }
  return front;
}

export interface ParetoPlotOptions extends PlotFrameOptions {
  points: readonly ParetoPoint[];
}

/** Accuracy against cost (e.g. FLOPs), the Pareto front highlighted as a step line with larger dots. */
export function paretoPlot(o: ParetoPlotOptions): string {
  const f = frame(o, 2);
  const front = paretoFront(o.points);
  const onFront = new Set(front);
  const pts = o.points.map((p, i) => ({ ...p, i })).filter((p) => Number.isFinite(p.cost) && Number.isFinite(p.accuracy));
  const [x0, x1] = extent(pts.map((p) => p.cost), false);
  const [y0, y1] = extent(pts.map((p) => p.accuracy), false);
  const x = linearScale(x0, x1, f.left, f.right, 6);
  const y = linearScale(y0, y1, f.bottom, f.top, 5);
  const body: string[] = [axes(f, x, y, { xLabel: 'FLOPs', yLabel: 'accuracy (%)', ...o })];
  const title = (p: ParetoPoint) => (p.label ? el('title', {}, escapeXml(`${p.label}: ${p.accuracy}, ${p.cost}`)) : '');
  body.push(
    el(
      'g',
      { class: 'points' },
      pts
        .filter((p) => !onFront.has(p.i))
        .map((p) => el('circle', { class: 'point', cx: x(p.cost), cy: y(p.accuracy), r: 3, fill: '#bab0ac' }, title(p)))
        .join(''),
    ),
  );
  // The front as a staircase: accuracy holds until the next front point's cost.
  let d = '';
  front.forEach((i, k) => {
    const p = o.points[i];
    if (k === 0) d += `M${fmt(x(p.cost))} ${fmt(y(p.accuracy))}`;
    else d += `H${fmt(x(p.cost))}V${fmt(y(p.accuracy))}`;
  });
  body.push(
    el(
      'g',
      { class: 'front' },
      (d ? el('path', { class: 'front-line', d, fill: 'none', stroke: PALETTE[2], 'stroke-width': 2 }) : '') +
        front.map((i) => el('circle', { class: 'front-point', cx: x(o.points[i].cost), cy: y(o.points[i].accuracy), r: 4.5, fill: PALETTE[2] }, title(o.points[i]))).join(''),
    ),
  );
  body.push(
    legend(f, [
      { name: 'Pareto front', color: PALETTE[2], marker: true },
      { name: 'dominated', color: '#bab0ac', marker: true },
    ]),
  );
  return svgDoc(f.width, f.height, body.join(''));
}

/** Stack finished plots vertically into one SVG (e.g. loss above correlation). */
export function stackPlots(svgs: readonly string[]): string {
  let y = 0;
  let width = 0;
  const parts: string[] = [];
  for (const s of svgs) {
    const m = /^<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(s);
    if (!m) throw new RangeError('stackPlots: not an SVG made by this package');
    const w = Number(m[1]);
    const h = Number(m[2]);
    parts.push(s.trim().replace(/^<svg /, `<svg x="0" y="${y}" `));
    y += h;
    width = Math.max(width, w);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}">${parts.join('')}</svg>\n`;
}
