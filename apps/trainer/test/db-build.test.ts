import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDatabase, readTasks, type MetaRecord } from '@metad2a/data-pipeline';
import { runCli, tmpDir, TINY_ARGS } from './db-helpers.js';

const strip = (r: MetaRecord) => ({ ...r, time: '' });

describe('trainer build-database (local)', () => {
  it('trains, appends valid records, resumes without duplicates, and is deterministic across runs', async () => {
    const dir = tmpDir('local');
    const a = path.join(dir, 'a.csv');
    const args = [...TINY_ARGS, '--tasks', '2', '--archs-per-task', '2'];
    const r1 = await runCli(['build-database', ...args, '--out', a]);
    expect(r1.code, r1.err.join('\n')).toBe(0);
    // progress bar (plain lines off a TTY) reaching 4/4 and the summary table
    expect(r1.err.some((l) => /build-database \[#+\] 4\/4 100% .*eta 0:00/.test(l))).toBe(true);
    expect(r1.out.join('\n')).toMatch(/a\.csv\s+4\s+0\s+4\s+4\s/);
    const recs = (await readDatabase(a)).records;
    expect(recs).toHaveLength(4);
    expect(new Set(recs.map((r) => r.taskId)).size).toBe(2);
    for (const r of recs) expect(r).toMatchObject({ dataset: 'cifar10-subset', searchSpace: 'nb201', recipe: 'tiny-c4n1-16px-1ep', seed: 3 });
    expect(readTasks(path.join(dir, 'a.tasks.json'))).toHaveLength(2);

    // an interrupted run (1 record), resumed, equals the uninterrupted one
    const b = path.join(dir, 'b.csv');
    expect((await runCli(['build-database', ...args, '--out', b, '--limit', '1'])).code).toBe(0);
    expect((await readDatabase(b)).records).toHaveLength(1);
    const r2 = await runCli(['build-database', ...args, '--out', b]);
    expect(r2.code).toBe(0);
    expect(r2.out.join('\n')).toMatch(/b\.csv\s+4\s+1\s+3\s+4\s/);
    expect((await readDatabase(b)).records.map(strip)).toEqual(recs.map(strip));
    // finished: a third run adds nothing
    const r3 = await runCli(['build-database', ...args, '--out', b]);
    expect(r3.out.join('\n')).toMatch(/b\.csv\s+4\s+4\s+0\s+4\s/);
    expect((await readDatabase(b)).records).toHaveLength(4);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bad options fail with one line and exit code 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--space', 'nb101', '--sources', 'mnist', '--tasks', '1'], /^error: invalid option 'space': unknown search space 'nb101' \(known: nb201, mbv3\)$/],
      [['--recipe', 'fast', '--sources', 'mnist', '--tasks', '1'], /^error: invalid option 'recipe': unknown recipe 'fast' \(known: .*nb201-full-200ep.*\)$/],
      [['--sources', 'no-such-set', '--tasks', '1'], /^error: invalid option 'sources': unknown source '.*no-such-set' /],
      [['--sources', 'cifar10-subset', '--tasks', '1', '--classes-per-task', '20'], /^error: invalid option 'classes-per-task': 20 is more than any source has/],
      [['--sources', 'cifar10-subset', '--tasks', '1', '--redis', 'http://x'], /^error: invalid option 'redis': 'http:\/\/x' is not a redis:\/\/ URL$/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['build-database', ...args, '--out', path.join(tmpDir('bad'), 'db.csv')]);
      expect(r.code, args.join(' ')).toBe(2);
      const lines = r.err.filter((l) => l.trim() && !l.startsWith('[metad2a]'));
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(re);
    }
  });
});
