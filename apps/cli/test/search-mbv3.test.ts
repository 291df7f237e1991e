import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@metad2a/nn';
import { MetaDatabaseWriter, sampleTasks } from '@metad2a/data-pipeline';
import { buildConfig, metaTrain } from '@metad2a/meta-training';
import { packageSearchModel } from '@metad2a/search';
import { loadHelpOfaArchs, mbv3Space, Note10LatencyTable, ofaCost, parseOfaConfig } from '@metad2a/search-space-mbv3';
import { metad2a, root } from './fixture.js';

/**
 * MBV3 search end to end. No MBV3 model ships yet, so the test meta-trains a small one: 60 CIFAR-10 class
 * subsets x 8 of HELP's published OFA subnets (targets: the OFA accuracy predictor's stored outputs; this is
 * a fixture, not a shipped model), the repository's CIFAR-10 feature store, 20 generator epochs (enough for
 * a few percent of its 22-vertex graphs to be valid subnets) and a small predictor.
 */
let dir: string;
let model: string;
const features = path.join(root, 'datasets/features/cifar10.json');

beforeAll(async () => {
  await initBackend({ quiet: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-cli-mbv3-'));
  const help = loadHelpOfaArchs();
  const tasks = sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 60, classesPerTask: 4, seed: 7, idPrefix: 'm' });
  const database = path.join(dir, 'mbv3.jsonl');
  const w = await MetaDatabaseWriter.open(database);
  await w.append(
    tasks.flatMap((t, k) =>
      Array.from({ length: 8 }, (_, j) => {
        const i = k * 8 + j;
        return { taskId: t.id, dataset: 'cifar10', classes: t.classes, searchSpace: 'mbv3', arch: mbv3Space.format(help.archs[i]), accuracy: help.ofaPredictorTop1[i] * 100, recipe: 'ofa-predictor', seed: null, time: '2026-11-29T00:00:00Z' };
      }),
    ),
  );
  w.close();
  const common = { database, features: { cifar10: features }, searchSpace: 'mbv3', lr: 1e-3, valid: 0.1, seed: 333 };
  const gen = await metaTrain(buildConfig({ overrides: { ...common, model: 'generator', epochs: 40, checkpointEvery: 40, selection: { rule: 'all', k: 1, minAccuracy: null }, out: path.join(dir, 'gen') } }));
  const pred = await metaTrain(buildConfig({ overrides: { ...common, model: 'predictor', epochs: 2, hs: 64, checkpointEvery: 2, out: path.join(dir, 'pred') } }));
  model = path.join(dir, 'model');
  packageSearchModel({ generatorCheckpoint: gen.checkpoints[gen.checkpoints.length - 1], predictorCheckpoint: pred.bestCheckpoint ?? pred.checkpoints[pred.checkpoints.length - 1], out: model, name: 'test-mbv3', defaultDataset: features });
}, 300_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Candidate {
  rank: number;
  arch: string;
  score: number;
  mflops: number;
  latencyMs?: number;
}

function readResult(file: string) {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as { model: { space: string }; counts: { sampled: number; invalid: number; duplicate: number; unique: number; satisfyingConstraints?: number }; top: Candidate[]; candidates: Candidate[] };
}

describe('metad2a search on an MBV3 model', () => {
  it('generates unique valid OFA subnets and keeps only those under the latency (note10) and FLOPs bounds', async () => {
    const free = path.join(dir, 'free.json');
    const r0 = await metad2a(['search', '-c', model, '-n', '30', '-k', '30', '--seed', '3', '-o', free, '-q'], { cwd: dir });
    expect(r0.code, r0.stderr).toBe(0);
    console.log(`mbv3 search: ${JSON.stringify(readResult(free).counts)}`);
    const all = readResult(free);
    expect(all.model.space).toBe('mbv3');
    expect(all.counts.unique).toBe(30);
    expect(all.counts.sampled).toBe(all.counts.invalid + all.counts.duplicate + all.counts.unique);
    const keys = new Set(all.candidates.map((c) => mbv3Space.canonicalKey(parseOfaConfig(c.arch))));
    expect(keys.size).toBe(30);

    // bounds that cut the candidates: the median latency on the Note10 table, computed here independently
    const note10 = Note10LatencyTable.load();
    const lat = new Map(all.candidates.map((c) => [c.arch, note10.predict(parseOfaConfig(c.arch))]));
    const flops = new Map(all.candidates.map((c) => [c.arch, ofaCost(parseOfaConfig(c.arch)).mflops]));
    const sorted = [...lat.values()].sort((a, b) => a - b);
    const maxLatency = sorted[15];
    const maxFlops = Math.max(...flops.values());
    const expected = all.candidates.filter((c) => lat.get(c.arch)! <= maxLatency && flops.get(c.arch)! <= maxFlops);
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(30);

    const out = path.join(dir, 'bounded.json');
    const r = await metad2a(['search', '-c', model, '-n', '30', '-k', '5', '--seed', '3', '--max-latency', String(maxLatency), '--device', 'note10', '--max-flops', String(maxFlops), '-o', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const res = readResult(out);
    expect(res.candidates.map((c) => c.arch)).toEqual(all.candidates.map((c) => c.arch)); // same seed, same candidates
    expect(res.counts.satisfyingConstraints).toBe(expected.length);
    // the top-k: the best-scored candidates among those within both bounds, in score order
    const wantTop = [...expected].sort((a, b) => b.score - a.score).slice(0, 5).map((c) => c.arch);
    expect(res.top.map((c) => c.arch)).toEqual(wantTop);
    for (const c of res.top) expect(c.latencyMs).toBeCloseTo(lat.get(c.arch)!, 6);
    // the printed table shows the latency it filtered on
    expect(r.stdout).toMatch(/latency ms \(note10\)/);
    expect(r.stdout).toMatch(new RegExp(`${expected.length} satisfy the constraints`));
  }, 120_000);

  it('refuses a space other than the model\'s, and an unknown latency device, with one line each', async () => {
    for (const [args, message] of [
      [['--space', 'nb201'], /searches 'mbv3', not 'nb201' \(pass --checkpoint with a nb201 model, or drop --space\)/],
      [['--max-latency', '20', '--device', 'pixel1'], /no latency table for 'pixel1' \(use note10 or i7\)/],
    ] as const) {
      const r = await metad2a(['search', '-c', model, '-n', '5', '-o', path.join(dir, 'x.json'), '-q', ...args], { cwd: dir });
      expect(r.code).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
  }, 60_000);
});
