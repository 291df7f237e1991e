import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { Rng } from '@metad2a/core';
import { initBackend } from '@metad2a/nn';
import { encodeDataset, loadMobileNetExtractor, openFeatureStore, openImageFolder, readFeaturesCsv, type FeatureDataset } from '../src/index.js';
import { FIXTURES, MOBILENET, tmpDir } from './paths.js';

/** A features CSV whose rows say who they are: [class*1000 + row-within-class, label index, -1]. */
async function taggedFeatures(counts: number[]): Promise<FeatureDataset> {
  const lines: string[] = ['# extractor: tagged@1', 'label,f0,f1,f2'];
  // interleave classes so the store has to regroup them
  const seen = counts.map(() => 0);
  let left = counts.reduce((a, b) => a + b, 0);
  while (left > 0) {
    counts.forEach((n, c) => {
      if (seen[c] < n) {
        lines.push(`c${c},${c * 1000 + seen[c]},${c},-1`);
        seen[c]++;
        left--;
      }
    });
  }
  const f = path.join(tmpDir('tag'), 'tagged.csv');
  fs.writeFileSync(f, `${lines.join('\n')}\n`);
  return readFeaturesCsv(f);
}

describe('feature store from a features file', () => {
  test('rows are grouped by class with counts, offsets and record indices in the manifest', async () => {
    const ds = await taggedFeatures([3, 25, 40]);
    const out = path.join(tmpDir('store'), 'tagged.json');
    const store = await encodeDataset(ds, { out, chunkSize: 7 });
    const m = store.manifest;
    expect([m.extractor, m.dims, m.counts, m.offsets, m.classes]).toEqual(['tagged@1', 3, [3, 25, 40], [0, 3, 28], ['c0', 'c1', 'c2']]);
    expect(m.bytes).toBe(68 * 3 * 4);
    expect(m.source.kind).toBe('features');
    expect(m.source.selection).toEqual({ perClass: null, seed: 0 });
    expect(m.indices[0]).toEqual([0, 3, 6]); // rows interleaved c0,c1,c2 in the CSV
    const c1 = store.readClass(1);
    expect(Array.from({ length: 25 }, (_, r) => c1[r * 3])).toEqual(Array.from({ length: 25 }, (_, r) => 1000 + r));
    expect(fs.existsSync(`${out}.partial`)).toBe(false);
    // only the manifest and one binary
    expect(fs.readdirSync(path.dirname(out)).sort()).toEqual([m.data, 'tagged.json'].sort());
    store.close();
  });

  test('sample(): class-major [C*num_sample, D], without replacement when possible, seeded', async () => {
    const ds = await taggedFeatures([3, 25, 40]);
    const out = path.join(tmpDir('store'), 's.json');
    const store = await encodeDataset(ds, { out });
    const s = store.sample({ rng: new Rng(7), numSample: 20 });
    expect([s.classes, s.numSample, s.dims, s.data.length]).toEqual([[0, 1, 2], 20, 3, 3 * 20 * 3]);
    expect(s.replaced).toEqual([0]); // class 0 has 3 rows < 20
    for (let c = 0; c < 3; c++) {
      const tags = Array.from({ length: 20 }, (_, r) => s.data[(c * 20 + r) * 3]);
      expect(tags.every((t) => Math.floor(t / 1000) === c)).toBe(true);
      if (c > 0) expect(new Set(tags).size).toBe(20); // without replacement
      else expect(new Set(tags).size).toBeLessThanOrEqual(3);
    }
    const again = store.sample({ rng: new Rng(7), numSample: 20 });
    expect(Array.from(again.data)).toEqual(Array.from(s.data));
    const other = store.sample({ rng: new Rng(8), numSample: 20 });
    expect(Array.from(other.data)).not.toEqual(Array.from(s.data));
    const sub = store.sample({ rng: new Rng(1), numSample: 5, classes: [2, 1] });
    expect(sub.data[0]).toBeGreaterThanOrEqual(2000);
    expect(sub.data[5 * 3]).toBeLessThan(2000);
    store.close();
  });

  test('the extractor id is checked on open; dims too when given', async () => {
    const ds = await taggedFeatures([2, 2]);
    const out = path.join(tmpDir('store'), 'x.json');
    (await encodeDataset(ds, { out })).close();
    expect(() => openFeatureStore(out, { extractor: 'mobilenet_v1_1.0@96' })).toThrow(
      /x\.json, field 'extractor': features were made by 'tagged@1', but 'mobilenet_v1_1\.0@96' is expected \(re-encode the dataset with 'mobilenet_v1_1\.0@96', input size 96\)/,
    );
    expect(() => openFeatureStore(out, { extractor: '*', dims: 1024 })).toThrow(/features have 3 dims, 1024 expected/);
    openFeatureStore(out, { extractor: 'tagged@1', dims: 3 }).close();
  });

  test('a truncated binary or edited manifest is detected', async () => {
    const ds = await taggedFeatures([2, 2]);
    const out = path.join(tmpDir('store'), 'y.json');
    const st = await encodeDataset(ds, { out });
    const bin = st.dataPath;
    st.close();
    fs.truncateSync(bin, 20);
    expect(() => openFeatureStore(out, { extractor: '*' })).toThrow(/y\.[0-9a-f]+\.bin: has 20 bytes, manifest says 48/);
    const m = JSON.parse(fs.readFileSync(out, 'utf8'));
    m.offsets = [0, 1];
    fs.writeFileSync(out, JSON.stringify(m));
    expect(() => openFeatureStore(out, { extractor: '*' })).toThrow(/field 'offsets\[1\]': expected 2, got 1/);
  });

  test('perClass picks a seeded subset; rewriting replaces the old binary', async () => {
    const ds = await taggedFeatures([30, 30]);
    const out = path.join(tmpDir('store'), 'p.json');
    const a = await encodeDataset(ds, { out, perClass: 10, seed: 3 });
    const first = a.manifest;
    a.close();
    expect(first.counts).toEqual([10, 10]);
    expect(first.indices[0]).toEqual([...first.indices[0]].sort((x, y) => x - y));
    const b = await encodeDataset(ds, { out, perClass: 10, seed: 3 });
    expect(b.manifest.indices).toEqual(first.indices);
    b.close();
    const c = await encodeDataset(ds, { out, perClass: 10, seed: 4 });
    expect(c.manifest.indices).not.toEqual(first.indices);
    expect(fs.readdirSync(path.dirname(out)).filter((n) => n.endsWith('.bin'))).toEqual([c.manifest.data]);
    c.close();
  });

  test('an interrupted encode resumes from its finished chunks', async () => {
    const ds = await taggedFeatures([10, 10]);
    const out = path.join(tmpDir('store'), 'r.json');
    await expect(
      encodeDataset(ds, {
        out,
        chunkSize: 6,
        onProgress: (done) => {
          if (done >= 12) throw new Error('killed');
        },
      }),
    ).rejects.toThrow('killed');
    const partial = `${out}.partial`;
    expect(fs.readdirSync(partial).sort()).toEqual(['chunk-000000.f32', 'chunk-000001.f32', 'plan.json']);
    const progress: number[] = [];
    const st = await encodeDataset(ds, { out, chunkSize: 6, onProgress: (d) => progress.push(d) });
    expect(progress).toEqual([6, 12, 18, 20]);
    const fresh = await encodeDataset(ds, { out: path.join(tmpDir('store'), 'fresh.json'), chunkSize: 6, resume: false });
    expect(Array.from(st.readClass(1))).toEqual(Array.from(fresh.readClass(1)));
    // a different plan (another chunk size) does not reuse stale chunks
    fs.mkdirSync(partial);
    fs.writeFileSync(path.join(partial, 'plan.json'), '{"stale":true}');
    fs.writeFileSync(path.join(partial, 'chunk-000000.f32'), Buffer.alloc(6 * 3 * 4));
    const st2 = await encodeDataset(ds, { out, chunkSize: 6 });
    expect(st2.readClass(0)[0]).toBe(0);
    expect(st2.readClass(0)[3]).toBe(1);
    for (const s of [st, fresh, st2]) s.close();
  });
});

describe('feature store from images', () => {
  beforeAll(async () => {
    await initBackend({ quiet: true });
  });

  test('tiny image folder -> store whose rows equal the extractor output for those images', async () => {
    const fx = await loadMobileNetExtractor({ source: MOBILENET, inputSize: 64 });
    const ds = openImageFolder(path.join(FIXTURES, 'tiny'));
    const out = path.join(tmpDir('img'), 'tiny.json');
    const progress: number[] = [];
    const store = await encodeDataset(ds, { out, extractor: fx, batchSize: 5, chunkSize: 8, onProgress: (d) => progress.push(d) });
    expect(progress[progress.length - 1]).toBe(12);
    expect([store.extractor, store.dims, store.counts, store.manifest.inputSize]).toEqual(['mobilenet_v1_1.0@64', 1024, [4, 4, 4], 64]);
    const direct = await fx.embed(await ds.read([4, 5, 6, 7]));
    const cat = store.readClass(1);
    let diff = 0;
    for (let i = 0; i < cat.length; i++) diff = Math.max(diff, Math.abs(cat[i] - direct[i]));
    expect(diff).toBeLessThan(1e-4);
    // sampling 20 from 4 images per class goes with replacement, and says so
    expect(store.sample({ rng: new Rng(0) }).replaced).toEqual([0, 1, 2]);
    store.close();
    // a corrupt image stops the encode with the file's name
    await expect(encodeDataset(openImageFolder(path.join(FIXTURES, 'corrupt')), { out: path.join(tmpDir('img'), 'c.json'), extractor: fx })).rejects.toThrow(/r800-truncated\.jpg: corrupt JPEG/);
    await expect(encodeDataset(ds, { out: path.join(tmpDir('img'), 'n.json') })).rejects.toThrow(/needs a feature extractor/);
    fx.dispose();
  });
});

describe('ensureFeatureStore (cache)', () => {
  test('encodes once, reuses after, and re-encodes when the selection or the file changes', async () => {
    const { ensureFeatureStore } = await import('../src/index.js');
    const ds = await taggedFeatures([12, 12]);
    const dir = tmpDir('cache');
    let calls = 0;
    const a = await ensureFeatureStore(ds, { dir, perClass: 10, onProgress: () => calls++ });
    expect(calls).toBeGreaterThan(0);
    calls = 0;
    const b = await ensureFeatureStore(ds, { dir, perClass: 10, onProgress: () => calls++ });
    expect([calls, b.manifestPath]).toEqual([0, a.manifestPath]);
    const c = await ensureFeatureStore(ds, { dir, perClass: 5 });
    expect(c.manifestPath).not.toBe(a.manifestPath);
    fs.appendFileSync(ds.source[0], 'c0,999,0,-1\n');
    const ds2 = await readFeaturesCsv(ds.source[0]);
    const d = await ensureFeatureStore(ds2, { dir, perClass: 10 });
    expect(d.manifestPath).not.toBe(a.manifestPath);
    expect(path.basename(a.manifestPath)).toMatch(/^tagged-tagged@1-[0-9a-f]{16}\.json$/);
    for (const s of [a, b, c, d]) s.close();
  });
});
