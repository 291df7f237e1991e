import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '@metad2a/core';
import { defaultNb201TablePath, findRepoRoot, loadNb201Table, NB201_TABLE_ENV, parseNb201, type Nb201Table } from '../src/index.js';

// The real benchmark files (third-party, read in place).
const REPO = findRepoRoot(process.cwd())!;
const MAIN = path.resolve(REPO, '../shared/data/nb201/nats_bench.csv');

let table: Nb201Table;
beforeAll(async () => {
  table = await loadNb201Table(MAIN);
});

describe('nats_bench.csv', () => {
  it('holds all 15,625 cells with the 12-epoch file beside it', () => {
    expect(table.size).toBe(15625);
    expect(table.sources.epoch12).toBe(path.resolve(path.dirname(MAIN), 'nb201_12epoch_valid_test.csv'));
    // Row 0 of the official order (named in the data README).
    expect(table.stringAt(0)).toBe('|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|');
  });

  it('finds the published NB201 optima at the right cells', () => {
    const c10 = table.topK(1, { dataset: 'cifar10', split: 'test', epochs: 200 })[0];
    expect(c10.index).toBe(6111);
    expect(c10.str).toBe('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|');
    expect(c10.accuracy).toBeCloseTo(94.37, 2);
    const c100 = table.topK(1, { dataset: 'cifar100', split: 'test', epochs: 200 })[0];
    expect(c100.index).toBe(9930);
    // The cell MetaD2A reports for CIFAR-100 (73.51, spec §6.1).
    expect(c100.str).toBe('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|');
    expect(c100.accuracy).toBeCloseTo(73.51, 2);
    const inet = table.topK(1, { dataset: 'ImageNet16-120', split: 'test', epochs: 200 })[0];
    expect(inet.index).toBe(857);
    expect(inet.accuracy).toBeCloseTo(47.31, 2);
  });

  it('looks cells up by string, arch and index, per dataset, split and epochs', () => {
    const s = '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|';
    expect(table.indexOf(s)).toBe(1);
    expect(table.indexOf(parseNb201(s))).toBe(1);
    // Values copied by hand from line 3 of both files.
    expect(table.accuracy(s, { dataset: 'cifar10', split: 'test', epochs: 200 })).toBe(93.66000000000001);
    expect(table.accuracy(1, { dataset: 'cifar100', split: 'test', epochs: 200 })).toBe(70.29333326822916);
    expect(table.accuracy(parseNb201(s), { dataset: 'ImageNet16-120', split: 'test', epochs: 200 })).toBe(44.03333332316081);
    expect(table.accuracy(s, { dataset: 'cifar10', split: 'test', epochs: 12 })).toBe(88.22);
    expect(table.accuracy(s, { dataset: 'cifar10', split: 'valid', epochs: 12 })).toBe(82.83399999389648);
    expect(table.accuracy(s, { dataset: 'ImageNet16-120', split: 'valid', epochs: 12 })).toBe(35.433333353678385);
    expect(table.uniqueStringAt(1)).toBe('((0)@nor_conv_3x3)@avg_pool_3x3+(0)@nor_conv_3x3+((0)@nor_conv_3x3)@nor_conv_3x3+0');
    expect(() => table.accuracy(s, { dataset: 'cifar10', split: 'valid', epochs: 200 })).toThrow(/200-epoch validation/);
    expect(() => table.accuracy(s, { dataset: 'svhn' as never, split: 'test', epochs: 200 })).toThrow(/unknown NB201 dataset 'svhn'/);
    expect(() => table.indexOf('|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|')).toThrow(/unknown op 'conv'/);
    expect(() => table.stringAt(15625)).toThrow(RangeError);
  });

  it('ranks top-k in descending order and agrees with a plain scan', () => {
    const q = { dataset: 'cifar100', split: 'test', epochs: 12 } as const;
    const top = table.topK(5, q);
    expect(top).toHaveLength(5);
    for (let i = 1; i < top.length; i++) expect(top[i - 1].accuracy).toBeGreaterThanOrEqual(top[i].accuracy);
    // Independent scan of the raw file column.
    const lines = fs.readFileSync(path.join(path.dirname(MAIN), 'nb201_12epoch_valid_test.csv'), 'utf8').trimEnd().split('\n').slice(1);
    const best = Math.max(...lines.map((l) => Number(l.split(',')[4])));
    expect(top[0].accuracy).toBe(best);
    expect(best).toBeCloseTo(61.18, 2);
  });
});

describe('default path', () => {
  const saved = process.env[NB201_TABLE_ENV];
  afterAll(() => {
    if (saved === undefined) delete process.env[NB201_TABLE_ENV];
    else process.env[NB201_TABLE_ENV] = saved;
  });
  it('resolves ../shared/data from the repo root, overridable by env', () => {
    delete process.env[NB201_TABLE_ENV];
    expect(defaultNb201TablePath()).toBe(MAIN);
    process.env[NB201_TABLE_ENV] = '/some/where/t.csv';
    expect(defaultNb201TablePath()).toBe('/some/where/t.csv');
  });
});

describe('malformed files', () => {
  let dir: string;
  const header = 'CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString';
  const good = [
    '85.86,52.91,26.63,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,x',
    '93.66,70.29,44.03,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,y',
  ];
  const write = (name: string, lines: string[]) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, lines.join('\n') + '\n');
    return p;
  };
  const failure = async (p: string, opts?: Parameters<typeof loadNb201Table>[1]) => {
    try {
      await loadNb201Table(p, opts ?? { epoch12Path: null });
    } catch (e) {
      return e as InputError;
    }
    throw new Error('expected the load to fail');
  };
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nb201-table-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads a small well-formed table', async () => {
    const t = await loadNb201Table(write('ok.csv', [header, ...good]), { epoch12Path: null });
    expect(t.size).toBe(2);
    expect(t.sources.epoch12).toBeNull();
    expect(t.accuracy(1, { dataset: 'cifar10', split: 'test', epochs: 200 })).toBe(93.66);
    expect(() => t.accuracy(0, { dataset: 'cifar10', split: 'test', epochs: 12 })).toThrow(/no 12-epoch table loaded/);
  });

  it('names file, line and column of an unknown op', async () => {
    const p = write('op.csv', [header, good[0], '1,2,3,|avg_pool_3x3~0|+|nor_conv_5x5~0|skip_connect~1|+|none~0|none~1|none~2|,z']);
    const e = await failure(p);
    expect(e).toBeInstanceOf(InputError);
    expect(e.location).toMatchObject({ file: p, line: 3, column: '4 (ArchitectureString)' });
    expect(e.message).toContain(`${p}, line 3, column 4 (ArchitectureString)`);
    expect(e.message).toContain("unknown op 'nor_conv_5x5'");
  });

  it('names the column of a bad number', async () => {
    const p = write('num.csv', [header, good[0], '93.66,abc,44.03,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,y']);
    const e = await failure(p);
    expect(e.location).toMatchObject({ file: p, line: 3, column: '2 (CIFAR100TestAccuracy200Epochs)' });
    expect(e.message).toMatch(/'abc' is not an accuracy/);
  });

  it('rejects short rows, missing columns, bad structure and repeats', async () => {
    let e = await failure(write('short.csv', [header, good[0], '93.66,70.29,44.03']));
    expect(e.location).toMatchObject({ line: 3 });
    expect(e.message).toMatch(/expected 5 fields, found 3/);
    e = await failure(write('hdr.csv', ['CIFAR10TestAccuracy200Epochs,ArchitectureString', '1,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|']));
    expect(e.location).toMatchObject({ line: 1, column: 'CIFAR100TestAccuracy200Epochs' });
    e = await failure(write('struct.csv', [header, '1,2,3,|none~0|+|none~0|none~1|,q']));
    expect(e.location).toMatchObject({ line: 2, column: '4 (ArchitectureString)' });
    expect(e.message).toMatch(/2 node groups/);
    e = await failure(write('dup.csv', [header, good[0], good[1], good[0]]));
    expect(e.location).toMatchObject({ line: 4 });
    expect(e.message).toMatch(/repeats line 2/);
    e = await failure(path.join(dir, 'absent.csv'));
    expect(e.message).toMatch(/file not found/);
  });

  it('checks the 12-epoch file against the main table', async () => {
    const main = write('m.csv', [header, ...good]);
    const h12 = 'arch,cellstr,cifar10-test,cifar10-val,cifar100-test,cifar100-val,imagenet-test,imagenet-val';
    const r0 = '0,|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|,69.55,63.36,31.25,31.84,16.99,18.46';
    const r1 = '1,|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|,88.22,82.83,58.25,57.79,33.80,35.43';
    const ok = await loadNb201Table(main, { epoch12Path: write('e12.csv', [h12, r0, r1]) });
    expect(ok.accuracy(1, { dataset: 'cifar100', split: 'valid', epochs: 12 })).toBe(57.79);
    const swapped = write('e12b.csv', [h12, r0, r1.replace(/^1,\|nor_conv_3x3~0\|/, '1,|nor_conv_1x1~0|')]);
    let e = await failure(main, { epoch12Path: swapped });
    expect(e.location).toMatchObject({ file: swapped, line: 3, column: '2 (cellstr)' });
    expect(e.message).toMatch(/differs from index 1/);
    const badVal = write('e12c.csv', [h12, r0, r1.replace('57.79', '157.79')]);
    e = await failure(main, { epoch12Path: badVal });
    expect(e.location).toMatchObject({ file: badVal, line: 3, column: '6 (cifar100-val)' });
    const shortFile = write('e12d.csv', [h12, r0]);
    e = await failure(main, { epoch12Path: shortFile });
    expect(e.message).toMatch(/1 rows, but/);
  });
});
