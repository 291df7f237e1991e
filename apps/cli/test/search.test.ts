import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nb201Cost, nb201Space, parseNb201 } from '@metad2a/search-space-201';
import { buildFixture, cli, EXTRACTOR, IMAGE_EXTRACTOR, metad2a, MOBILENET_DIR, root, shared, type Fixture } from './fixture.js';
import type { SearchJson } from '../src/commands/search.js';

let fx: Fixture;
let env: Record<string, string>;
/** cifar10 200-epoch test accuracy by NB201 string, read straight from the CSV (not through our table loader). */
const truth = new Map<string, number>();

beforeAll(async () => {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build the CLI first (nx run cli:build)`);
  fx = await buildFixture();
  env = { METAD2A_MODEL: fx.model, METAD2A_CACHE_DIR: fx.cacheDir };
  const lines = fs.readFileSync(path.join(shared, 'data/nb201/nats_bench.csv'), 'utf8').trim().split('\n');
  const head = lines[0].split(',');
  const a = head.indexOf('ArchitectureString');
  const c = head.indexOf('CIFAR10TestAccuracy200Epochs');
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    truth.set(f[a], Number(f[c]));
  }
});
afterAll(() => fx && fs.rmSync(fx.dir, { recursive: true, force: true }));

const readResult = (file: string) => JSON.parse(fs.readFileSync(path.join(fx.dir, file), 'utf8')) as SearchJson;

/** scipy's Spearman and Kendall (tau-b) as an independent reference. */
function scipyCorr(x: number[], y: number[]): { spearman: number; kendall: number } {
  const out = execFileSync('python3', ['-c', 'import json,sys\nfrom scipy import stats\nx,y=json.load(sys.stdin)\nprint(json.dumps([stats.spearmanr(x,y)[0], stats.kendalltau(x,y)[0]]))'], { input: JSON.stringify([x, y]) });
  const [spearman, kendall] = JSON.parse(out.toString()) as number[];
  return { spearman, kendall };
}

describe('metad2a search', () => {
  it('runs with no arguments on the default model and its default dataset, and writes the JSON result', async () => {
    const r = await metad2a([], { cwd: fx.dir, env });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const res = readResult('metad2a-search.json');
    expect(res.model.dir).toBe(fx.model);
    expect(res.dataset.store).toBe(path.join(fx.model, 'default-dataset.json'));
    expect(res.dataset.kind).toBe('feature-store');
    const c = res.counts;
    expect(c.unique).toBe(500);
    expect(c.sampled).toBe(c.unique + c.invalid + c.duplicate);
    expect(res.candidates).toHaveLength(500);
    expect(new Set(res.candidates.map((x) => x.arch)).size).toBe(500);
    expect(res.top).toHaveLength(5);
    expect(res.top).toEqual(res.candidates.slice(0, 5));
    for (let i = 1; i < res.candidates.length; i++) expect(res.candidates[i - 1].score).toBeGreaterThanOrEqual(res.candidates[i].score);
    for (const x of res.candidates.slice(0, 50)) {
      const cost = nb201Cost(parseNb201(x.arch), { numClasses: 10 });
      expect(x.mflops).toBeCloseTo(cost.flops, 6);
      expect(x.mparams).toBeCloseTo(cost.params, 6);
      // the manifest's target statistics (mean 70, std 15) map scores to accuracies
      expect(x.predictedAccuracy).toBeCloseTo(x.score * 1500 + 70, 1);
    }
    for (const k of ['featuresSeconds', 'generateSeconds', 'rankSeconds', 'searchSeconds', 'totalSeconds'] as const) expect(res.timings[k]).toBeGreaterThan(0);
    expect(res.timings.totalSeconds).toBeGreaterThanOrEqual(res.timings.searchSeconds);
    // the printed table names the top-5 in order and reports what was dropped
    const printed = r.stdout.split('\n').filter((l) => /^\s*\d+\s+\|/.test(l));
    expect(printed.map((l) => l.trim().split(/\s+/)[1])).toEqual(res.top.map((t) => t.arch));
    expect(r.stdout).toContain(`generated ${c.sampled} graphs: ${c.invalid} invalid, ${c.duplicate} duplicate, 500 unique valid`);
  });

  it('embeds a features file once (cached by path and extractor), looks up true accuracies and applies a FLOPs bound', async () => {
    const args = ['search', '-d', fx.npy, '--features-extractor', EXTRACTOR, '-n', '100', '-k', '4', '--seed', '3', '--benchmark', '--max-flops', '50', '-o', 'bench.json', '-q'];
    const first = await metad2a(args, { cwd: fx.dir, env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const res = readResult('bench.json');
    expect(res.dataset.kind).toBe('features');
    expect(res.dataset.encoded).toBe(true);
    expect(path.dirname(res.dataset.store)).toBe(path.join(fx.cacheDir, 'features'));
    expect(res.dataset.counts).toEqual(new Array(10).fill(20));
    expect(res.candidates).toHaveLength(100);
    for (const x of res.candidates) expect(x.trueAccuracy).toBe(truth.get(x.arch));
    // constrained top-k: the best-ranked candidates within the bound, in ranking order
    const within = res.candidates.filter((x) => x.mflops! <= 50);
    expect(res.counts.satisfyingConstraints).toBe(within.length);
    expect(res.top).toEqual(within.slice(0, 4));
    const ref = scipyCorr(res.candidates.map((x) => x.score), res.candidates.map((x) => x.trueAccuracy!));
    expect(res.benchmark!.spearman).toBeCloseTo(ref.spearman, 6);
    expect(res.benchmark!.kendall).toBeCloseTo(ref.kendall, 6);
    expect(res.benchmark!.bestInCandidates).toBe(Math.max(...res.candidates.map((x) => x.trueAccuracy!)));

    const again = await metad2a(args, { cwd: fx.dir, env });
    expect(again.code).toBe(0);
    const res2 = readResult('bench.json');
    expect(res2.dataset.encoded).toBe(false);
    expect(res2.dataset.store).toBe(res.dataset.store);
    // same seed, same features: the same candidates in the same order
    expect(res2.candidates.map((x) => x.arch)).toEqual(res.candidates.map((x) => x.arch));
  });

  it('reads CSV features naming their extractor; another seed gives other candidates', async () => {
    const a = await metad2a(['search', '-d', fx.csv, '-n', '40', '--seed', '1', '-o', 's1.json', '-q'], { cwd: fx.dir, env });
    const b = await metad2a(['search', '-d', fx.csv, '-n', '40', '--seed', '2', '-o', 's2.json', '-q'], { cwd: fx.dir, env });
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const r1 = readResult('s1.json');
    const r2 = readResult('s2.json');
    expect(r1.dataset.classes).toEqual(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
    expect(r1.candidates.map((x) => x.arch)).not.toEqual(r2.candidates.map((x) => x.arch));
  });

  it('--dedupe isomorphic keeps one string per network; the default keeps isomorphic strings apart', async () => {
    const run = async (dedupe: string) => {
      const r = await metad2a(['search', '-d', fx.csv, '-n', '300', '--seed', '4', '--dedupe', dedupe, '-o', `dedupe-${dedupe}.json`, '-q'], { cwd: fx.dir, env });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return readResult(`dedupe-${dedupe}.json`);
    };
    const networks = (res: SearchJson) => new Set(res.candidates.map((c) => nb201Space.canonicalKey(parseNb201(c.arch))));
    const byString = await run('string');
    const byNetwork = await run('isomorphic');
    expect(byString.options.dedupe).toBe('string');
    expect(byNetwork.options.dedupe).toBe('isomorphic');
    // the string rule lets isomorphic cells through (otherwise this test could not tell the rules apart) ...
    expect(networks(byString).size).toBeLessThan(300);
    // ... the isomorphic rule does not, and it rejects more generated graphs as duplicates to collect as many
    expect(byNetwork.candidates).toHaveLength(300);
    expect(networks(byNetwork).size).toBe(300);
    expect(byNetwork.counts.duplicate).toBeGreaterThan(byString.counts.duplicate);
    const bad = await metad2a(['search', '-d', fx.csv, '--dedupe', 'graph', '-q'], { cwd: fx.dir, env });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/dedupe/);
  });
});

describe('metad2a search on images', () => {
  const images = () => path.join(root, 'test-fixtures/images/tiny');
  it('embeds an image folder with the model\'s extractor (MobileNet from a local copy) once, then reuses the cached store', async () => {
    const args = ['search', '-c', fx.imageModel, '-d', images(), '--extractor-source', MOBILENET_DIR, '--allow-few', '-n', '20', '-o', 'img.json', '-q'];
    const first = await metad2a(args, { cwd: fx.dir, env });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const res = readResult('img.json');
    expect(res.dataset.kind).toBe('images');
    expect(res.dataset.encoded).toBe(true);
    expect(res.dataset.classes).toEqual(['airplane', 'cat', 'ship']);
    expect(res.dataset.counts).toEqual([4, 4, 4]);
    const store = JSON.parse(fs.readFileSync(res.dataset.store, 'utf8'));
    expect(store.extractor).toBe(IMAGE_EXTRACTOR);
    expect(store.dims).toBe(512);
    expect(res.candidates).toHaveLength(20);
    const again = await metad2a(args, { cwd: fx.dir, env });
    expect(again.code).toBe(0);
    expect(readResult('img.json').dataset).toMatchObject({ encoded: false, store: res.dataset.store });
  });

  it('refuses an image folder with fewer images per class than the model samples', async () => {
    const r = await metad2a(['search', '-c', fx.imageModel, '-d', images(), '--extractor-source', MOBILENET_DIR, '-q'], { cwd: fx.dir, env });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/tiny: class 'airplane' has 4 images \(3 classes have fewer than 20\); the model draws 20 per class \(give every class at least 20 images, or pass --allow-few/);
  });
});

describe('one-line errors with the fix, non-zero exit', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['a feature store from another extractor', () => ['search', '-d', fx.otherStore], /made by 'mobilenet_v1_1\.0@96', but 'resnet18-original@32' is expected \(re-encode/],
    ['a features file from another extractor', () => ['search', '-d', path.join(fx.dir, 'other.csv')], /other\.csv, field 'extractor': features were made by 'resnet50@224', but the model expects 'resnet18-original@32' \(re-encode/],
    ['too few images per class', () => ['search', '-d', fx.fewCsv], /few\.csv: class 'airplane' has 5 images .*the model draws 20 per class \(give every class at least 20 images/],
    ['an unknown dataset format', () => ['search', '-d', path.join(fx.dir, 'feats0.labels.txt')], /feats0\.labels\.txt: unknown dataset file type \(expected \.bin/],
    ['an unsatisfiable constraint', () => ['search', '-n', '30', '--max-flops', '1'], /no candidate satisfies the constraints FLOPs <= 1 M; candidates' FLOPs range .* relax the bound/],
    ['a folder without a model', () => ['search', '-c', fx.cacheDir], /not a search model folder \(no model\.json\) \(pass --checkpoint/],
    ['a latency bound on NB201', () => ['search', '-n', '30', '--max-latency', '5', '--device', 'note10'], /no latency tables for the 'nb201' search space/],
    ['an unknown option', () => ['search', '--num-gens', '3'], /Unknown arguments?: num-gens/],
  ];
  beforeAll(() => {
    const lines = fs.readFileSync(fx.csv, 'utf8').split('\n');
    lines[0] = '# extractor: resnet50@224';
    fs.writeFileSync(path.join(fx.dir, 'other.csv'), lines.join('\n'));
  });
  it.each(cases)('%s', async (_name, args, message) => {
    const r = await metad2a([...args(), '-q'], { cwd: fx.dir, env });
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: /);
    expect(lines[0]).toMatch(message);
  });

  it('without any model says how to get one', async () => {
    const r = await metad2a(['search'], { cwd: fx.dir, env: { METAD2A_MODEL: path.join(fx.dir, 'nowhere'), METAD2A_CACHE_DIR: fx.cacheDir } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no model\.json.*--checkpoint.*METAD2A_MODEL.*datasets\/models\/default/);
  });
});

describe('metad2a evaluate', () => {
  it('reports top-1 and best-of-top-k over runs with mean, std and 95% interval, against random search and FLOPs', async () => {
    const r = await metad2a(['evaluate', '-d', fx.csv, '--runs', '3', '-n', '60', '--lookups', '1,10', '--seed', '5', '--score-repeats', '1', '-q'], { cwd: fx.dir, env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(fs.readFileSync(path.join(fx.dir, 'metad2a-evaluate.json'), 'utf8'));
    const rep = out.report;
    expect(rep.runs).toHaveLength(3);
    const optimum = Math.max(...truth.values());
    expect(rep.optimum).toBeCloseTo(optimum, 9);
    const values = new Set(truth.values());
    for (const run of rep.runs) {
      expect(values.has(run.top1)).toBe(true);
      expect(run.bestOfTop['1']).toBe(run.top1);
      expect(run.bestOfTop['10']).toBeGreaterThanOrEqual(run.top1);
      for (const k of ['1', '10']) for (const v of [run.bestOfTop[k], run.random[k], run.flops[k]]) expect(values.has(v) && v <= optimum).toBe(true);
    }
    // mean, sample std and Student-t 95% half-width, by scipy
    const top1 = rep.runs.map((x: { top1: number }) => x.top1);
    const ref = JSON.parse(
      execFileSync('python3', ['-c', 'import json,sys\nimport numpy as np\nfrom scipy import stats\nx=np.array(json.load(sys.stdin))\ns=x.std(ddof=1)\nprint(json.dumps([x.mean(), s, stats.t.ppf(0.975, len(x)-1)*s/np.sqrt(len(x))]))'], { input: JSON.stringify(top1) }).toString(),
    ) as number[];
    expect(rep.top1.mean).toBeCloseTo(ref[0], 9);
    expect(rep.top1.std).toBeCloseTo(ref[1], 6);
    // core's t quantile is an approximation (about 1e-4 relative at 2 degrees of freedom)
    expect(Math.abs(rep.top1.ci95 / ref[2] - 1)).toBeLessThan(1e-3);
    expect(r.stdout).toMatch(/best of predictor top-10/);
    expect(r.stdout).toMatch(/random search, 10 archs/);
    expect(r.stdout).toMatch(/FLOPs heuristic top-10/);
  });
});

describe('metad2a plot', () => {
  it('writes the Pareto front and predicted-vs-true SVGs with the rank correlations', async () => {
    const r = await metad2a(['plot', '--from', 'bench.json', '--out-dir', 'plots'], { cwd: fx.dir, env });
    expect(r.code).toBe(0);
    const res = readResult('bench.json');
    const pareto = fs.readFileSync(path.join(fx.dir, 'plots/pareto.svg'), 'utf8');
    const scatter = fs.readFileSync(path.join(fx.dir, 'plots/predicted-vs-true.svg'), 'utf8');
    for (const svg of [pareto, scatter]) {
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg.trim().endsWith('</svg>')).toBe(true);
    }
    expect((scatter.match(/class="point"/g) ?? []).length).toBe(res.candidates.length);
    const ref = scipyCorr(res.candidates.map((x) => x.predictedAccuracy), res.candidates.map((x) => x.trueAccuracy!));
    expect(scatter).toContain(`Spearman ρ = ${ref.spearman.toFixed(3)}`);
    expect(scatter).toContain(`Kendall τ = ${ref.kendall.toFixed(3)}`);
    // the front: candidates not dominated in (FLOPs, true accuracy), counted independently
    const pts = res.candidates.map((x) => [x.mflops!, x.trueAccuracy!]);
    const front = pts.filter(([f, a]) => !pts.some(([g, b]) => g <= f && b >= a && (g < f || b > a)));
    expect(r.stdout).toContain(`(${front.length} Pareto-optimal of ${res.candidates.length})`);
  });
});

describe('metad2a info', () => {
  it('reports backend, checkpoint, extractor and versions', async () => {
    const r = await metad2a(['info', '--json'], { cwd: fx.dir, env });
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(['wasm', 'cpu', 'tensorflow', 'tensorflow-gpu']).toContain(info.backend.name);
    expect(info.checkpoint.dir).toBe(fx.model);
    expect(info.checkpoint.extractor).toBe(EXTRACTOR);
    expect(info.checkpoint.featureDim).toBe(512);
    expect(info.checkpoint.defaultDataset).toBe(path.join(fx.model, 'default-dataset.json'));
    expect(info.extractor.id).toBe(EXTRACTOR);
    expect(info.versions['@tensorflow/tfjs']).toBe('4.22.0');
    expect(info.metad2a).toBe(JSON.parse(fs.readFileSync(path.join(cli, '../../package.json'), 'utf8')).version);
  });
});
