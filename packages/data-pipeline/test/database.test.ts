import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import {
  MetaDatabaseWriter,
  NB201_RECIPE,
  denormalizeAccuracy,
  importNb201Table,
  normalizeAccuracy,
  readDatabase,
  splitRecords,
  targetStats,
  taskTargetStats,
  type MetaRecord,
} from '../src/index.js';
import { NB201_CSV, tmpDir } from './paths.js';

const rec = (i: number, over: Partial<MetaRecord> = {}): MetaRecord => ({
  taskId: `task-${i}`,
  dataset: 'imagenet32',
  classes: [i, i + 5, i + 9],
  searchSpace: 'nb201',
  arch: '|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|',
  accuracy: 60 + i / 4,
  recipe: 'tiny-1ep',
  seed: i % 3,
  time: '2026-11-29T03:00:00.000Z',
  ...over,
});

describe.each(['csv', 'jsonl'])('meta-training database (%s)', (ext) => {
  test('append, reopen (resume keys), read back equal', async () => {
    const f = path.join(tmpDir('db'), `db.${ext}`);
    const w = await MetaDatabaseWriter.open(f);
    await w.append([rec(0), rec(1)]);
    await w.append(rec(2, { seed: null, arch: 'a,b "quoted"' }));
    w.close();
    const w2 = await MetaDatabaseWriter.open(f);
    expect(w2.size).toBe(3);
    expect(w2.has(rec(1))).toBe(true);
    expect(w2.has(rec(1, { seed: 7 }))).toBe(false);
    await w2.append(rec(3));
    w2.close();
    const { records, lines, warnings } = await readDatabase(f);
    expect(records).toEqual([rec(0), rec(1), rec(2, { seed: null, arch: 'a,b "quoted"' }), rec(3)]);
    expect(lines).toEqual(ext === 'csv' ? [2, 3, 4, 5] : [1, 2, 3, 4]);
    expect(warnings).toEqual([]);
  });

  test('a torn last line (killed writer) is ignored with a warning; the writer cuts it before appending', async () => {
    const f = path.join(tmpDir('db'), `db.${ext}`);
    const w = await MetaDatabaseWriter.open(f);
    await w.append([rec(0), rec(1)]);
    w.close();
    const whole = fs.readFileSync(f, 'utf8');
    fs.appendFileSync(f, ext === 'csv' ? 'task-9,imagenet32,1;2' : '{"task_id":"task-9","data');
    const seen: string[] = [];
    const r = await readDatabase(f, { onWarning: (m) => seen.push(m) });
    expect(r.records).toHaveLength(2);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/ignoring an incomplete last line/);
    const w2 = await MetaDatabaseWriter.open(f, { onWarning: () => {} });
    expect(fs.readFileSync(f, 'utf8')).toBe(whole);
    await w2.append(rec(2));
    w2.close();
    expect((await readDatabase(f)).records).toEqual([rec(0), rec(1), rec(2)]);
  });

  test('bad rows are errors naming file, line and field; bad records are refused before writing', async () => {
    const f = path.join(tmpDir('db'), `db.${ext}`);
    const w = await MetaDatabaseWriter.open(f);
    await w.append([rec(0), rec(1)]);
    await expect(w.append(rec(2, { accuracy: 140 }))).rejects.toThrow(/field 'accuracy': 140 is outside 0\.\.100/);
    w.close();
    const text = fs.readFileSync(f, 'utf8');
    const lines = text.split('\n');
    const k = ext === 'csv' ? 2 : 1; // the second record's line (0-based index)
    lines[k] = lines[k].replace('task-1', '');
    fs.writeFileSync(f, lines.join('\n'));
    await expect(readDatabase(f)).rejects.toThrow(new RegExp(`db\\.${ext}, line ${k + 1}, field 'task_id': missing`));
    lines[k] = ext === 'csv' ? lines[k].replace(/,60\.25,/, ',sixty,') : lines[k].replace('"accuracy":60.25', '"accuracy":"sixty"');
    lines[k] = lines[k].replace(/^,|"task_id":""/, (m) => (m === ',' ? 'task-1,' : '"task_id":"task-1"'));
    fs.writeFileSync(f, lines.join('\n'));
    await expect(readDatabase(f)).rejects.toThrow(new RegExp(`line ${k + 1}, field 'accuracy': 'sixty' is not a number`));
    await expect(readDatabase(f, { validateArch: () => null })).rejects.toThrow(/sixty/);
  });
});

describe('database utilities', () => {
  test('CSV header is checked; arch strings can be validated by the caller', async () => {
    const dir = tmpDir('db');
    fs.writeFileSync(path.join(dir, 'h.csv'), 'task_id,dataset,classes\nx,y,1\n');
    await expect(readDatabase(path.join(dir, 'h.csv'))).rejects.toThrow(/h\.csv, line 1, field 'search_space': header lacks column\(s\) search_space, arch/);
    const f = path.join(dir, 'ok.csv');
    const w = await MetaDatabaseWriter.open(f);
    await w.append(rec(0, { arch: 'bogus' }));
    w.close();
    await expect(readDatabase(f, { validateArch: (space, arch) => (arch.startsWith('|') ? null : `not a ${space} cell`) })).rejects.toThrow(/ok\.csv, line 2, field 'arch': not a nb201 cell/);
  });

  test('split: validation = first 400 of a seeded permutation (or a fraction); train/valid partition the records', () => {
    const records = Array.from({ length: 1000 }, (_, i) => i);
    const s = splitRecords(records, { valid: 400, seed: 0 });
    expect(s.valid).toHaveLength(400);
    expect(s.train).toHaveLength(600);
    expect(new Set([...s.valid, ...s.train]).size).toBe(1000);
    expect(splitRecords(records, { valid: 400, seed: 0 })).toEqual(s);
    expect(splitRecords(records, { valid: 400, seed: 1 }).valid).not.toEqual(s.valid);
    expect(splitRecords(records, { valid: 0.15, seed: 0 }).valid).toHaveLength(150);
    // the original's stored permutation can be used as is
    const perm = Array.from({ length: 5 }, (_, i) => 4 - i);
    expect(splitRecords(['a', 'b', 'c', 'd', 'e'], { valid: 2, seed: 0, permutation: perm })).toMatchObject({ valid: ['e', 'd'], train: ['c', 'b', 'a'] });
    expect(() => splitRecords(records, { valid: 1001, seed: 0 })).toThrow(/invalid option 'valid'/);
  });

  test('target stats: mean and unbiased std (hand-derived), the original ((acc-mean)/std)/100 and its inverse', () => {
    const s = targetStats([70, 72, 74, 76]);
    expect(s.mean).toBe(73);
    // sum of squares 9+1+1+9 = 20, /3
    expect(s.std).toBeCloseTo(Math.sqrt(20 / 3), 12);
    expect(normalizeAccuracy(76, s)).toBeCloseTo(3 / Math.sqrt(20 / 3) / 100, 12);
    expect(denormalizeAccuracy(normalizeAccuracy(71.3, s), s)).toBeCloseTo(71.3, 10);
    expect(() => targetStats([5])).toThrow(/at least 2/);
  });

  test('task-relative stats: task means, pooled within-task std over N - T (hand-derived), overall mean', () => {
    const s = taskTargetStats([
      { taskId: 'a', accuracy: 70 },
      { taskId: 'b', accuracy: 90 },
      { taskId: 'a', accuracy: 74 },
      { taskId: 'b', accuracy: 92 },
      { taskId: 'b', accuracy: 94 },
    ]);
    expect([...s.taskMeans]).toEqual([['a', 72], ['b', 92]]);
    // squared deviations 4 + 4 (a) + 4 + 0 + 4 (b) = 16 over 5 - 2 degrees of freedom
    expect(s.std).toBeCloseTo(Math.sqrt(16 / 3), 12);
    expect(s.mean).toBeCloseTo(84, 12);
    expect(() => taskTargetStats([{ taskId: 'a', accuracy: 1 }, { taskId: 'b', accuracy: 2 }])).toThrow(/at least 2 records/);
    expect(() => taskTargetStats([{ taskId: 'a', accuracy: 1 }, { taskId: 'a', accuracy: 1 }])).toThrow(/equal accuracies/);
  });
});

describe('NAS-Bench-201 importer', () => {
  test('nats_bench.csv -> whole-dataset records for cifar10 and cifar100 (optima from the table README)', async () => {
    const recs = await importNb201Table(NB201_CSV, { time: '2026-11-29T00:00:00Z' });
    expect(recs).toHaveLength(2 * 15625);
    const c10 = recs.filter((r) => r.dataset === 'cifar10');
    const c100 = recs.filter((r) => r.dataset === 'cifar100');
    expect([c10.length, c100.length]).toEqual([15625, 15625]);
    expect(c10[0]).toMatchObject({ taskId: 'cifar10-all', searchSpace: 'nb201', recipe: NB201_RECIPE, seed: null, arch: '|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|' });
    expect(c10[0].classes).toHaveLength(10);
    expect(c100[0].classes).toHaveLength(100);
    const argmax = (rs: MetaRecord[]) => rs.reduce((b, r, i) => (r.accuracy > rs[b].accuracy ? i : b), 0);
    expect(argmax(c10)).toBe(6111);
    expect(c10[6111].accuracy).toBeCloseTo(94.3733, 3);
    expect(argmax(c100)).toBe(9930);
    expect(c100[9930].accuracy).toBeCloseTo(73.5133, 3);
    // they go through the database writer's validation and come back equal
    const f = path.join(tmpDir('nb'), 'nb201.csv');
    const w = await MetaDatabaseWriter.open(f);
    await w.append(c100.slice(0, 50));
    w.close();
    expect((await readDatabase(f)).records).toEqual(c100.slice(0, 50));
  });

  test('python csv module reads our CSV the same way (independent parser)', async () => {
    const f = path.join(tmpDir('db'), 'py.csv');
    const w = await MetaDatabaseWriter.open(f);
    await w.append([rec(0, { arch: 'x,"y"' }), rec(1)]);
    w.close();
    const r = spawnSync('python3', ['-c', `import csv; rows=list(csv.DictReader(open('${f}'))); print(len(rows), rows[0]['arch'], rows[0]['classes'], rows[1]['seed'], rows[1]['accuracy'])`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('2 x,"y" 0;5;9 1 60.25');
  });
});
