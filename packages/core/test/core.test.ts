import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng, pearson, spearman, kendall, ranks, summarize, genericInvalidReason, toGraphology, fromGraphology, writeFileAtomic, writeChunksAtomic, InputError, findRepoRoot } from '../src/index.js';

describe('Rng', () => {
  it('is reproducible and seed-dependent', () => {
    const a = new Rng(42), b = new Rng(42), c = new Rng(43);
    const xa = Array.from({ length: 10 }, () => a.next());
    const xb = Array.from({ length: 10 }, () => b.next());
    const xc = Array.from({ length: 10 }, () => c.next());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });
  it('draws uniform integers and normals with the right moments', () => {
    const r = new Rng(1);
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 50000; i++) counts[r.int(5)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    const xs = Array.from({ length: 50000 }, () => r.normal());
    const s = summarize(xs);
    expect(Math.abs(s.mean)).toBeLessThan(0.02);
    expect(Math.abs(s.std - 1)).toBeLessThan(0.02);
  });
  it('permutations contain each index once', () => {
    const p = new Rng(3).permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('rank statistics', () => {
  it('match hand-computed values', () => {
    // scipy: pearsonr([1,2,3,4,5],[2,4,5,4,5]) = 0.7745966692414834
    expect(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).toBeCloseTo(0.7745966692414834, 12);
    // scipy 1.x: spearmanr(...) = 0.7378647873726218, kendalltau(...) = 0.6708203932499368
    expect(spearman([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).toBeCloseTo(0.7378647873726218, 12);
    expect(kendall([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).toBeCloseTo(0.6708203932499368, 12);
    expect(Array.from(ranks([10, 20, 20, 5]))).toEqual([2, 3.5, 3.5, 1]);
  });
  it('95% interval uses the t distribution', () => {
    const s = summarize([1, 2, 3, 4]);
    expect(s.mean).toBe(2.5);
    expect(s.ci95).toBeCloseTo((3.182 * Math.sqrt(5 / 3)) / 2, 6);
  });
});

describe('generic DAG validity', () => {
  const ok = { types: [0, 2, 1], edges: [[0, 1], [1, 2]] as Array<[number, number]> };
  it('accepts a chain and round-trips through graphology', () => {
    expect(genericInvalidReason(ok, 0, 1)).toBeNull();
    expect(fromGraphology(toGraphology(ok))).toEqual(ok);
  });
  it('names what is wrong', () => {
    expect(genericInvalidReason({ types: [0, 2, 1], edges: [[0, 2]] }, 0, 1)).toMatch(/vertex 1 has no incoming/);
    expect(genericInvalidReason({ types: [0, 0, 1], edges: [[0, 1], [1, 2]] }, 0, 1)).toMatch(/one START/);
    expect(genericInvalidReason({ types: [0, 2, 1], edges: [[0, 1], [1, 2], [2, 1]] }, 0, 1)).toMatch(/cycle/);
  });
});

describe('atomic writes and errors', () => {
  it('replaces a file whole', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-'));
    const f = path.join(dir, 'a.txt');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, 'two');
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    expect(fs.readdirSync(dir)).toEqual(['a.txt']);
  });
  it('a write that fails midway keeps the old file and leaves no temporary file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'core-'));
    const f = path.join(dir, 'a.bin');
    writeFileAtomic(f, 'old');
    function* failing() {
      yield Buffer.from('new part');
      throw new Error('disk gone');
    }
    expect(() => writeChunksAtomic(f, failing())).toThrow(/disk gone/);
    expect(fs.readFileSync(f, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir)).toEqual(['a.bin']);
    // a target that cannot be replaced (a directory): the rename fails, the temporary file goes
    fs.mkdirSync(path.join(dir, 'sub'));
    expect(() => writeFileAtomic(path.join(dir, 'sub'), 'x')).toThrow();
    expect(fs.readdirSync(dir).sort()).toEqual(['a.bin', 'sub']);
  });
  it('input errors name file, line and field', () => {
    const e = new InputError({ file: 'x.csv', line: 3, field: 'acc' }, 'not a number');
    expect(e.message).toBe("x.csv, line 3, field 'acc': not a number");
  });
});

describe('findRepoRoot', () => {
  it('finds the nearest folder with nx.json above a path, or null', () => {
    const top = fs.mkdtempSync(path.join(os.tmpdir(), 'root-'));
    const deep = path.join(top, 'a', 'b');
    fs.mkdirSync(deep, { recursive: true });
    expect(findRepoRoot(deep)).toBeNull();
    fs.writeFileSync(path.join(top, 'nx.json'), '{}');
    expect(findRepoRoot(deep)).toBe(top);
  });
});
