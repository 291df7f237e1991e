import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetaDatabaseWriter, sampleTasks } from '@metad2a/data-pipeline';
import { writePixelStore } from './pixel-store.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const cli = path.join(root, 'apps/trainer/dist/index.js');
const shared = path.resolve(root, '../shared/data');

interface Fixture {
  dir: string;
  database: string;
  store: string;
}

/**
 * Real data, small: CIFAR-10 subset images average-pooled to 4x4 RGB (48 features, 100 per class) as the
 * feature store; 16 tasks (3 or 4 CIFAR-10 classes) x 4 NB201 cells with 12-epoch table accuracies.
 * (The same recipe as packages/meta-training/test/fixture.ts; tsc's rootDir keeps us from importing it.)
 */
async function buildFixture(prefix: string): Promise<Fixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const store = path.join(dir, 'cifar10-pixels.json');
  await writePixelStore(store, shared);
  const table = fs.readFileSync(path.join(shared, 'nb201', 'nb201_12epoch_valid_test.csv'), 'utf8').split('\n');
  const cols = table[0].split(',');
  const archs = table.slice(1, 41).map((l) => l.split(',')).map((f) => ({ arch: f[cols.indexOf('cellstr')], accuracy: Number(f[cols.indexOf('cifar10-val')]) }));
  const tasks = [3, 4].flatMap((k) => sampleTasks({ sources: [{ name: 'cifar10', numClasses: 10 }], numTasks: 8, classesPerTask: k, seed: k, idPrefix: `c${k}` }));
  const database = path.join(dir, 'db.csv');
  const w = await MetaDatabaseWriter.open(database);
  await w.append(
    tasks.flatMap((t, k) =>
      [0, 1, 2, 3].map((j) => ({ taskId: t.id, dataset: 'cifar10', classes: t.classes, searchSpace: 'nb201', ...archs[(k * 4 + j) % 40], recipe: 'nb201-12ep-table', seed: null, time: '2026-11-29T00:00:00Z' })),
    ),
  );
  w.close();
  return { dir, database, store };
}

/** Elements of an SVG, after checking it is well-formed XML (balanced tags, quoted attributes, known entities). */
function svgElements(src: string): Array<{ name: string; attrs: Record<string, string>; text: string }> {
  const all: Array<{ name: string; attrs: Record<string, string>; text: string }> = [];
  const stack: typeof all = [];
  const re = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    if (m[6]) throw new Error(`malformed tag at ${m.index}`);
    if (m[5] !== undefined) {
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(m[5])) throw new Error(`bad entity at ${m.index}`);
      if (stack.length) stack[stack.length - 1].text += m[5].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
      else if (m[5].trim()) throw new Error('text outside the root');
      continue;
    }
    if (m[1]) {
      if (stack.pop()?.name !== m[2]) throw new Error(`unbalanced </${m[2]}> at ${m.index}`);
      continue;
    }
    const attrs = Object.fromEntries([...m[3].matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    const e = { name: m[2], attrs, text: '' };
    if (!all.length && stack.length === 0 && m[2] !== 'svg') throw new Error('root is not <svg>');
    all.push(e);
    if (!m[4]) stack.push(e);
  }
  if (stack.length) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  return all;
}
const byClass = (all: ReturnType<typeof svgElements>, cls: string) => all.filter((e) => (e.attrs.class ?? '').split(' ').includes(cls));

let fx: Fixture;
let configFile: string;
beforeAll(async () => {
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build the trainer first (nx run trainer:build)`);
  fx = await buildFixture('metad2a-trainer-mt-');
  // Relative paths in the config are resolved against the config file's folder.
  configFile = path.join(fx.dir, 'meta-train.yaml');
  fs.writeFileSync(
    configFile,
    [
      'model: predictor',
      `database: ${path.basename(fx.database)}`,
      'features:',
      `  cifar10: ${path.basename(fx.store)}`,
      'hs: 32',
      'nz: 16',
      'num-sample: 5',
      'batch-size: 8',
      'valid: 0.25',
      'lr: 0.003',
      'checkpoint-every: 2',
      'scheduler:',
      '  patience: 3',
      '',
    ].join('\n'),
  );
});
afterAll(() => fx && fs.rmSync(fx.dir, { recursive: true, force: true }));

async function trainer(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [cli, ...args], { cwd: fx.dir, env: { ...process.env, CI: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** Epochs in a run's log; a line still being written by a live trainer is skipped. */
const epochsOf = (file: string): number[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        const o = JSON.parse(l);
        return o.type === 'epoch' ? [o.epoch as number] : [];
      } catch {
        return [];
      }
    });

describe('trainer meta-train (the built CLI as a subprocess)', () => {
  it('trains from a YAML config with overrides, writes log, checkpoints and an SVG plot; --resume continues', async () => {
    const r = await trainer(['meta-train', '--config', configFile, '--epochs', '2', '--out', 'runs/p1']);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/epoch 1\/2 .*pearson .*spearman .*kendall/);
    expect(r.stdout).toMatch(/epoch 2\/2 /);
    const dir = path.join(fx.dir, 'runs/p1');
    expect(epochsOf(path.join(dir, 'log.jsonl'))).toEqual([1, 2]);
    for (const f of ['last.json', 'ckpt_2.json', 'ckpt_max_corr.json', 'config.json']) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    const all = svgElements(fs.readFileSync(path.join(dir, 'curves.svg'), 'utf8'));
    expect(byClass(all, 'line')).toHaveLength(5); // train + validation loss, three correlations
    expect(all.flatMap((e, i) => (byClass([e], 'legend-item').length ? [all[i + 2].text] : []))).toEqual(['train', 'validation', 'pearson', 'spearman', 'kendall']);
    expect(byClass(all, 'x-label').map((e) => e.text)).toEqual(['epoch', 'epoch']);

    const again = await trainer(['meta-train', '--config', configFile, '--epochs', '2', '--out', 'runs/p1']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^error: invalid option 'out': .*already holds a run \(pass --resume/);

    const resumed = await trainer(['meta-train', '--config', configFile, '--epochs', '3', '--out', 'runs/p1', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/resuming after epoch 2/);
    expect(resumed.stdout).toMatch(/epoch 3\/3 /);
    expect(resumed.stdout).not.toMatch(/epoch 1\/3 /);
    expect(epochsOf(path.join(dir, 'log.jsonl'))).toEqual([1, 2, 3]);
  });

  it('resumes after a SIGKILL mid-run and finishes with every epoch logged exactly once', async () => {
    const dir = path.join(fx.dir, 'runs/killed');
    const log = path.join(dir, 'log.jsonl');
    const child = spawn(process.execPath, [cli, 'meta-train', '--config', configFile, '--epochs', '6', '--out', dir], { cwd: fx.dir, env: { ...process.env, CI: '1' }, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_, sig) => resolve(sig)));
    // Kill it without warning once a few epochs are done (anywhere: mid-batch, mid-checkpoint, mid-log-line).
    for (let t = 0; t < 600 && !(fs.existsSync(log) && epochsOf(log).length >= 2); t++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const before = epochsOf(log).length;
    expect(before).toBeGreaterThanOrEqual(2);
    expect(before).toBeLessThan(6);
    const r = await trainer(['meta-train', '--config', configFile, '--epochs', '6', '--out', dir, '--resume']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/resuming after epoch \d+/);
    expect(epochsOf(log)).toEqual(Array.from({ length: 6 }, (_, i) => i + 1));
  });

  it('stops cleanly on Ctrl-C (SIGINT) after the epoch in progress, with a resumable checkpoint', async () => {
    const dir = path.join(fx.dir, 'runs/interrupted');
    const log = path.join(dir, 'log.jsonl');
    const child = spawn(process.execPath, [cli, 'meta-train', '--config', configFile, '--epochs', '50', '--out', dir], { cwd: fx.dir, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let code: number | null | undefined;
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve((code = c))));
    for (let t = 0; t < 600 && code === undefined && !(fs.existsSync(log) && epochsOf(log).length >= 1); t++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGINT');
    expect(await exited, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    const done = epochsOf(log);
    expect(done.length).toBeLessThan(50);
    expect(stdout).toMatch(new RegExp(`stopped: ${done.length} epochs`));
    expect(stdout).toMatch(/continue with --resume/);
    const last = JSON.parse(fs.readFileSync(path.join(dir, 'last.json'), 'utf8'));
    expect(last.meta.epoch).toBe(done[done.length - 1]);
    expect(fs.existsSync(path.join(dir, 'run.lock'))).toBe(false);
  });

  it('fails with one clear line and exit code 2 on a bad config', async () => {
    const bad = path.join(fx.dir, 'bad.yaml');
    fs.writeFileSync(bad, fs.readFileSync(configFile, 'utf8').replace('batch-size: 8', 'bach-size: 8'));
    const r = await trainer(['meta-train', '--config', bad, '--out', 'runs/bad']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: invalid option 'bachSize': unknown key in .*bad\.yaml \(did you mean 'batchSize'\?\)/);
    const s = await trainer(['meta-train', '--config', configFile, '--out', 'runs/bad2', '--set', 'scheduler.patience=-1']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/^error: invalid option 'scheduler\.patience': expected a non-negative integer, got -1 \(in --set\)/);
    const f = await trainer(['meta-train', '--config', configFile, '--out', 'runs/bad3', '--features', 'cifar10']);
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/invalid option 'features': 'cifar10' is not <dataset>=<feature store>/);
  });
});
