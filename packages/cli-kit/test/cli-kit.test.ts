import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { InputError } from '@metad2a/core';
import { formatTable, ProgressBar, runCli } from '../src/index.js';

describe('runCli', () => {
  it('prints our errors as one line and sets exit code 2', async () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d) => (text += d));
    await runCli(async () => {
      throw new InputError({ file: 'a.csv', line: 2, field: 'acc' }, 'not a number');
    }, out);
    expect(text).toBe("error: a.csv, line 2, field 'acc': not a number\n");
    expect(process.exitCode).toBe(2);
    process.exitCode = 0;
  });
  it('lets bugs through with their stack', async () => {
    await expect(runCli(async () => { throw new TypeError('bug'); })).rejects.toThrow('bug');
  });
});

describe('ProgressBar', () => {
  it('renders counts, percent and ETA, and logs plain lines off a TTY', () => {
    const out = new PassThrough() as unknown as NodeJS.WriteStream;
    let text = '';
    (out as unknown as PassThrough).on('data', (d) => (text += d));
    const bar = new ProgressBar('train', 4, out, 0);
    bar.tick();
    bar.tick(3, 'loss 0.5');
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^train \[#{24}\] 4\/4 100% elapsed 0:00 eta 0:00 loss 0\.5$/);
    expect(lines[0]).toMatch(/1\/4 25%/);
  });
});

describe('formatTable', () => {
  it('aligns text left and numbers right', () => {
    const t = formatTable(['arch', 'acc'], [['a', 94.37], ['bbb', 5]]);
    expect(t.split('\n')).toEqual(['arch    acc', '----  -----', 'a     94.37', 'bbb       5']);
  });
});
