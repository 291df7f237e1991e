import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDatabase } from '@metad2a/data-pipeline';
import { parseOfaConfig } from '@metad2a/search-space-mbv3';
import { DEFAULT_DB_RECIPE } from '@metad2a/db-build';
import { runCli, tmpDir } from './db-helpers.js';

describe('trainer build-database --space mbv3 (local)', () => {
  it('trains OFA subnets on real CIFAR-10 images and appends valid mbv3 records', async () => {
    const dir = tmpDir('mbv3');
    const db = path.join(dir, 'mbv3.csv');
    const args = ['--space', 'mbv3', '--recipe', 'tiny-mbv3-w100-32px-1ep', '--sources', 'cifar10-subset', '--tasks', '1', '--archs-per-task', '2', '--classes-per-task', '2', '--test-per-class', '5', '--seed', '4'];
    const r = await runCli(['build-database', ...args, '--out', db]);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.out.join('\n')).toMatch(/mbv3\.csv\s+2\s+0\s+2\s+2\s/);
    const recs = (await readDatabase(db)).records;
    expect(recs).toHaveLength(2);
    for (const rec of recs) {
      expect(rec).toMatchObject({ dataset: 'cifar10-subset', searchSpace: 'mbv3', recipe: 'tiny-mbv3-w100-32px-1ep', seed: 4 });
      expect(parseOfaConfig(rec.arch).d).toHaveLength(5);
      // 10 held-out images
      expect(Math.abs(rec.accuracy / 10 - Math.round(rec.accuracy / 10))).toBeLessThan(1e-9);
    }
    expect(recs[0].arch).not.toBe(recs[1].arch);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without --recipe, each space gets its own default recipe (planned with --limit 0, nothing trained)', async () => {
    for (const [space, recipe] of [['mbv3', 'mbv3-w100-32px-5ep-200pc'], ['nb201', DEFAULT_DB_RECIPE]]) {
      const db = path.join(tmpDir(`default-${space}`), 'db.csv');
      const r = await runCli(['build-database', '--space', space, '--sources', 'cifar10', '--tasks', '1', '--archs-per-task', '1', '--classes-per-task', '2', '--limit', '0', '--out', db]);
      expect(r.code, r.err.join('\n')).toBe(0);
      expect(r.err.join('\n')).toContain(`trainings with '${recipe}'`);
    }
  });

  it('an NB201 recipe for mbv3 fails with one line naming the MBV3 recipes', async () => {
    const r = await runCli(['build-database', '--space', 'mbv3', '--recipe', 'nb201-c8n1-16px-5ep-200pc', '--sources', 'cifar10-subset', '--tasks', '1', '--out', path.join(tmpDir('bad'), 'db.csv')]);
    expect(r.code).toBe(2);
    const lines = r.err.filter((l) => l.trim() && !l.startsWith('[metad2a]'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: invalid option 'recipe': 'nb201-c8n1-16px-5ep-200pc' is a recipe for nb201 networks, not mbv3 \(mbv3 recipes: mbv3-w100-32px-5ep-200pc, .*tiny-mbv3-w100-32px-1ep\)$/);
  });
});
