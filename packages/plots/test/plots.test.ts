import { describe, expect, it } from 'vitest';
import { linePlot, niceTicks, logTicks, paretoFront, paretoPlot, scatterPlot, stackPlots } from '../src/index.js';
import { byClass, parseXml } from './xml.js';

describe('axis ticks', () => {
  it('chooses 1-2-5 steps covering the range (hand-derived)', () => {
    expect(niceTicks(0, 10, 5)).toMatchObject({ ticks: [0, 2, 4, 6, 8, 10], step: 2 });
    // raw step 0.0185 -> 0.02; range widened to [0, 0.1]
    expect(niceTicks(0.013, 0.087, 4).ticks).toEqual([0, 0.02, 0.04, 0.06, 0.08, 0.1]);
    // raw step 30 -> 50; [-120, 80] -> [-150, 100]
    expect(niceTicks(-120, 80, 4).ticks).toEqual([-150, -100, -50, 0, 50, 100]);
    // a single value still gets an axis around it
    expect(niceTicks(5, 5).ticks.length).toBeGreaterThan(1);
    expect(logTicks(0.03, 40).ticks).toEqual([0.01, 0.1, 1, 10, 100]);
    expect(logTicks(3, 40).ticks).toEqual([1, 2, 5, 10, 20, 50, 100]);
  });
});

describe('linePlot', () => {
  it('is well-formed SVG with one path per series, a dot per point, ticks, labels and legend', () => {
    const svg = linePlot({
      title: 'loss <train & valid>',
      xLabel: 'epoch',
      yLabel: 'loss',
      series: [
        { name: 'train', x: [1, 2, 3, 4, 5], y: [10, 8, 6, 5, 4.5] },
        { name: 'valid', x: [1, 2, 3, 4], y: [11, 9, 8, 7.5], dashed: true },
      ],
    });
    const { root, all } = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(byClass(all, 'line')).toHaveLength(2);
    expect(byClass(all, 'point')).toHaveLength(9);
    expect(byClass(all, 'legend-item').map((e) => e.children.find((c) => c.name === 'text')!.text)).toEqual(['train', 'valid']);
    expect(byClass(all, 'x-label')[0].text).toBe('epoch');
    expect(byClass(all, 'y-label')[0].text).toBe('loss');
    expect(byClass(all, 'title')[0].text).toBe('loss <train & valid>');
    // x in [1, 5]: step 1 -> 1..5; y in [4.5, 11]: raw 1.3 -> step 2 -> 4..12
    expect(byClass(all, 'x-tick').map((e) => e.text)).toEqual(['1', '2', '3', '4', '5']);
    expect(byClass(all, 'y-tick').map((e) => e.text)).toEqual(['4', '6', '8', '10', '12']);
    expect(byClass(all, 'line')[1].attrs['stroke-dasharray']).toBeDefined();
  });

  it('breaks lines at non-finite values and drops non-positive values on a log axis', () => {
    const svg = linePlot({ series: [{ name: 'a', x: [1, 2, 3, 4, 5], y: [100, NaN, 10, 0, 1] }], logY: true });
    const { all } = parseXml(svg);
    const d = byClass(all, 'line')[0].attrs.d;
    expect(d.match(/M/g)).toHaveLength(3);
    expect(byClass(all, 'point')).toHaveLength(3);
    expect(byClass(all, 'y-tick').map((e) => e.text)).toEqual(['1', '2', '5', '10', '20', '50', '100']);
  });

  it('rejects mismatched series', () => {
    expect(() => linePlot({ series: [{ name: 'bad', x: [1, 2], y: [1] }] })).toThrow(/bad/);
  });
});

describe('scatterPlot', () => {
  it('draws every point and annotates rank correlations', () => {
    const svg = scatterPlot({ points: [{ x: 1, y: 1 }, { x: 2, y: 3 }, { x: 3, y: 2 }, { x: 4, y: 4, label: 'a<b' }], correlation: true, diagonal: true, xLabel: 'predicted', yLabel: 'true' });
    const { all } = parseXml(svg);
    expect(byClass(all, 'point')).toHaveLength(4);
    expect(byClass(all, 'diagonal')).toHaveLength(1);
    // by hand: d = (0, 1, 1, 0) -> rho = 1 - 6*2/(4*15) = 0.8; 5 concordant, 1 discordant of 6 -> tau = 0.667
    const note = byClass(all, 'annotation')[0].text;
    expect(note).toContain('ρ = 0.800');
    expect(note).toContain('τ = 0.667');
    expect(note).toContain('n = 4');
    expect(all.filter((e) => e.name === 'title').map((e) => e.text)).toEqual(['a<b']);
  });
});

describe('Pareto front', () => {
  const pts = [
    { cost: 1, accuracy: 50 },
    { cost: 2, accuracy: 60 },
    { cost: 2, accuracy: 55 },
    { cost: 3, accuracy: 58 },
    { cost: 4, accuracy: 70 },
    { cost: 4, accuracy: 70 },
    { cost: 5, accuracy: 65 },
    { cost: NaN, accuracy: 99 },
  ];
  it('keeps exactly the non-dominated points (hand-derived)', () => {
    expect(paretoFront(pts)).toEqual([0, 1, 4, 5]);
    expect(paretoFront([])).toEqual([]);
  });
  it('highlights the front in the plot', () => {
    const { all } = parseXml(paretoPlot({ points: pts, title: 'accuracy vs FLOPs' }));
    expect(byClass(all, 'front-point')).toHaveLength(4);
    expect(byClass(all, 'point')).toHaveLength(3);
    expect(byClass(all, 'front-line')).toHaveLength(1);
    expect(byClass(all, 'x-label')[0].text).toBe('FLOPs');
    expect(byClass(all, 'y-label')[0].text).toBe('accuracy (%)');
  });
});

describe('stackPlots', () => {
  it('nests plots into one well-formed document', () => {
    const a = linePlot({ series: [{ name: 'a', x: [0, 1], y: [0, 1] }], height: 300 });
    const b = linePlot({ series: [{ name: 'b', x: [0, 1], y: [1, 0] }], height: 200 });
    const { root, all } = parseXml(stackPlots([a, b]));
    expect(root.attrs.height).toBe('500');
    expect(root.children.filter((c) => c.name === 'svg').map((c) => c.attrs.y)).toEqual(['0', '300']);
    expect(byClass(all, 'line')).toHaveLength(2);
  });
  it('the checker itself rejects broken XML', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow(/does not match/);
    expect(() => parseXml('<svg a="1" a="2"/>')).toThrow(/duplicate/);
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow(/&/);
  });
});
