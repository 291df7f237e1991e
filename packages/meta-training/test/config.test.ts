import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@metad2a/core';
import type { MetaRecord } from '@metad2a/data-pipeline';
import { buildConfig, camelKey, selectGeneratorPairs } from '../src/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metad2a-mt-config-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const required = { database: '/data/db.csv', features: { cifar10: '/data/c10.json' }, out: '/runs/x' };

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

function error(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('config', () => {
  it("defaults to the original's hyperparameters", () => {
    const g = buildConfig({ overrides: { model: 'generator', ...required } });
    expect(g).toMatchObject({ lr: 1e-4, epochs: 400, checkpointEvery: 20, batchSize: 32, numSample: 20, seed: 333, beta: 0.005, hs: 56, nz: 56, numHeads: 4, valid: 400 });
    expect(g.scheduler).toEqual({ factor: 0.1, patience: 10, threshold: 1e-4, thresholdMode: 'rel', cooldown: 0, minLr: 0, eps: 1e-8 });
    expect(g.selection).toEqual({ rule: 'best', k: 1, minAccuracy: null });
    const p = buildConfig({ overrides: { model: 'predictor', ...required } });
    expect([p.hs, p.nz, p.selectBy]).toEqual([512, 56, 'pearson']);
  });

  it('reads YAML with kebab/snake keys, resolves paths against the file, and lets the command line win', () => {
    const f = write(
      'run.yaml',
      ['model: predictor', 'database: data/db.csv', 'features:', '  cifar10: stores/c10.json', 'out: runs/p', 'batch-size: 16', 'max_epoch_unused: 1'].slice(0, 6).join('\n') +
        '\nscheduler:\n  patience: 3\nselect_by: kendall\n',
    );
    const c = buildConfig({ file: f, overrides: { epochs: 7, batchSize: undefined, scheduler: { factor: 0.5 } } });
    expect(c.database).toBe(path.join(dir, 'data/db.csv'));
    expect(c.features.cifar10).toBe(path.join(dir, 'stores/c10.json'));
    expect(c.out).toBe(path.join(dir, 'runs/p'));
    expect([c.batchSize, c.epochs, c.selectBy]).toEqual([16, 7, 'kendall']);
    expect(c.scheduler).toMatchObject({ patience: 3, factor: 0.5, threshold: 1e-4 });
    expect(camelKey('checkpoint_every')).toBe('checkpointEvery');
  });

  it('reads JSON too', () => {
    const f = write('run.json', JSON.stringify({ model: 'generator', ...required, epochs: 3 }));
    expect(buildConfig({ file: f }).epochs).toBe(3);
  });

  it('names unknown keys, with a suggestion', () => {
    const f = write('typo.yaml', 'model: generator\nbach_size: 8\n');
    const e = error(() => buildConfig({ file: f, overrides: required }));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toContain("'bachSize'");
    expect(e.message).toContain(f);
    expect(e.message).toContain("did you mean 'batchSize'");
    const n = error(() => buildConfig({ overrides: { model: 'generator', ...required, scheduler: { patence: 2 } } }));
    expect(n.message).toMatch(/'scheduler\.patence'.*did you mean 'scheduler\.patience'/);
    expect(error(() => buildConfig({ overrides: { model: 'generator', ...required, zzzz: 1 } })).message).toMatch(/'zzzz'.*known keys: model, database/);
  });

  it('names the key of a wrongly typed value', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ epochs: 'ten' }, /'epochs': expected a positive integer, got 'ten'/],
      [{ epochs: 2.5 }, /'epochs'/],
      [{ lr: -1 }, /'lr': expected a positive number/],
      [{ model: 'gan' }, /'model': expected one of 'generator', 'predictor'/],
      [{ scheduler: { factor: 1.5 } }, /'scheduler\.factor'/],
      [{ scheduler: 3 }, /'scheduler': expected a mapping/],
      [{ valid: 0 }, /'valid'/],
      [{ features: ['a'] }, /'features'/],
      [{ selection: { rule: 'worst' } }, /'selection\.rule'/],
      [{ seed: -1 }, /'seed'/],
    ];
    for (const [bad, re] of cases) {
      const e = error(() => buildConfig({ overrides: { model: 'generator', ...required, ...bad } }));
      expect(e, JSON.stringify(bad)).toBeInstanceOf(ConfigError);
      expect(e.message, JSON.stringify(bad)).toMatch(re);
    }
  });

  it('requires model, database, features and out; checks cross-field rules', () => {
    expect(error(() => buildConfig({ overrides: { model: 'generator', features: required.features, out: 'x' } })).message).toMatch(/'database': required.*--database/);
    expect(error(() => buildConfig({ overrides: { ...required } })).message).toMatch(/'model': required/);
    expect(error(() => buildConfig({ overrides: { model: 'generator', ...required, hs: 32 } })).message).toMatch(/'hs'.*hs == nz/);
    expect(buildConfig({ overrides: { model: 'generator', ...required, nz: 32 } }).hs).toBe(32);
    expect(error(() => buildConfig({ overrides: { model: 'predictor', ...required, nz: 30 } })).message).toMatch(/'numHeads'.*30/);
  });

  it('takes --set key=value overrides for any key, nested ones included, typed as YAML scalars', () => {
    const c = buildConfig({ set: ['scheduler.patience=5', 'selection.rule=top-k', 'selection.k=2', 'lr=3e-4', 'selection.min-accuracy=null'], overrides: { model: 'generator', ...required } });
    expect([c.scheduler.patience, c.scheduler.factor, c.selection.rule, c.selection.k, c.lr, c.selection.minAccuracy]).toEqual([5, 0.1, 'top-k', 2, 3e-4, null]);
    // explicit options win over --set
    expect(buildConfig({ set: ['epochs=9'], overrides: { model: 'generator', ...required, epochs: 3 } }).epochs).toBe(3);
    expect(error(() => buildConfig({ set: ['scheduler.patience=soon'], overrides: { model: 'generator', ...required } })).message).toMatch(/'scheduler\.patience': expected a non-negative integer, got 'soon' \(in --set\)/);
    expect(error(() => buildConfig({ set: ['patience'], overrides: { model: 'generator', ...required } })).message).toMatch(/'--set': 'patience' is not key=value/);
    expect(error(() => buildConfig({ set: ['sheduler.patience=1'], overrides: { model: 'generator', ...required } })).message).toMatch(/'sheduler'.*did you mean 'scheduler'/);
  });

  it('reports YAML syntax errors with file and line', () => {
    const f = write('broken.yaml', 'model: generator\nfeatures:\n  cifar10: [a\nout: x\n');
    const e = error(() => buildConfig({ file: f }));
    expect(e).toBeInstanceOf(InputError);
    expect(e.message).toMatch(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, line \\d+`));
    expect(error(() => buildConfig({ file: write('list.yaml', '- 1\n- 2\n') })).message).toMatch(/mapping/);
    expect(error(() => buildConfig({ file: path.join(dir, 'missing.yaml') })).message).toMatch(/cannot read config file \(ENOENT\)/);
  });
});

describe('generator pair selection', () => {
  const rec = (taskId: string, arch: string, accuracy: number) => ({ record: { taskId, arch, accuracy } as MetaRecord });
  const items = [rec('A', 'a1', 70), rec('B', 'b1', 60), rec('A', 'a2', 80), rec('A', 'a3', 80)];
  const archs = (rule: 'best' | 'top-k' | 'all', k = 1, minAccuracy: number | null = null) => selectGeneratorPairs(items, { rule, k, minAccuracy }).map((x) => x.record.arch);
  it('keeps the best architecture per task by default (ties: file order)', () => {
    expect(archs('best')).toEqual(['a2', 'b1']);
  });
  it('supports top-k, all and a minimum accuracy', () => {
    expect(archs('top-k', 2)).toEqual(['a2', 'a3', 'b1']);
    expect(archs('all', 1, 65)).toEqual(['a2', 'a3', 'a1']);
    expect(archs('best', 1, 75)).toEqual(['a2']);
  });
});
