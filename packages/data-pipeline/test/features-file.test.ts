import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { encodeNpyF32, openDataset, readFeaturesCsv, readFeaturesNpy, type FeatureDataset } from '../src/index.js';
import { tmpDir } from './paths.js';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

describe('CSV features', () => {
  test('comment with extractor id, header, string labels -> sorted classes', async () => {
    const f = path.join(tmpDir('csv'), 'feats.csv');
    fs.writeFileSync(f, '# made elsewhere\n# extractor: resnet18-imagenet@32\nlabel,a,b,c\ndog,1,2,3\ncat,4,5,6.5\n\ndog,-1,0,1e-3\n');
    const ds = (await openDataset(f)) as FeatureDataset;
    expect(ds.kind).toBe('features');
    expect(ds.extractor).toBe('resnet18-imagenet@32');
    expect(ds.classes).toEqual(['cat', 'dog']);
    expect(Array.from(ds.labels)).toEqual([1, 0, 1]);
    expect(ds.dims).toBe(3);
    expect(Array.from(ds.readRows([2, 1]))).toEqual([-1, 0, Math.fround(1e-3), 4, 5, 6.5]);
  });

  test('integer labels without header are ordered numerically; label column may be named', async () => {
    const dir = tmpDir('csv');
    fs.writeFileSync(path.join(dir, 'a.csv'), '10,0.5\n2,1.5\n10,2.5\n');
    const a = await readFeaturesCsv(path.join(dir, 'a.csv'));
    expect(a.classes).toEqual(['2', '10']);
    expect(Array.from(a.labels)).toEqual([1, 0, 1]);
    fs.writeFileSync(path.join(dir, 'b.csv'), 'f0,f1,class\n1,2,x\n3,4,y\n');
    const b = await readFeaturesCsv(path.join(dir, 'b.csv'));
    expect(b.classes).toEqual(['x', 'y']);
    expect(Array.from(b.readRows([1]))).toEqual([3, 4]);
  });

  test('errors name file, line and column', async () => {
    const dir = tmpDir('csv');
    const f = path.join(dir, 'bad.csv');
    fs.writeFileSync(f, '# extractor: x@32\nlabel,a,b\ncat,1,2\ndog,1\n');
    await expect(readFeaturesCsv(f)).rejects.toThrow(/bad\.csv, line 4: 2 fields, expected 3/);
    fs.writeFileSync(f, 'cat,1,2\ndog,1,zz\n');
    await expect(readFeaturesCsv(f)).rejects.toThrow(/bad\.csv, line 2, column 3: feature value 'zz' is not a finite number/);
    fs.writeFileSync(f, 'cat,1,2\nbird,3,4\n');
    await expect(readFeaturesCsv(f, { classes: ['cat', 'dog'] })).rejects.toThrow(/bad\.csv, line 2, field 'label': label 'bird' is not one of the 2 given classes/);
    fs.writeFileSync(f, 'cat,1,2\n');
    await expect(readFeaturesCsv(f, { classes: ['cat', 'dog'] })).rejects.toThrow(/class 'dog' has no rows/);
  });
});

describe.runIf(hasNumpy)('NPY features (files written by numpy)', () => {
  test('float32 and float64 features with integer or text labels', async () => {
    const dir = tmpDir('npy');
    const py = `
import numpy as np
x = np.arange(12, dtype=np.float32).reshape(4, 3) / 4
np.save('${dir}/f32.npy', x)
np.save('${dir}/f64.npy', x.astype(np.float64) * 2)
np.save('${dir}/f32.labels.npy', np.array([3, 1, 3, 1], dtype=np.int64))
open('${dir}/f64.labels.txt', 'w').write('b\\na\\nb\\na\\n')
`;
    expect(spawnSync('python3', ['-c', py]).status).toBe(0);
    const a = readFeaturesNpy(path.join(dir, 'f32.npy'), { extractor: 'other@64' });
    expect([a.size, a.dims, a.classes, a.extractor]).toEqual([4, 3, ['1', '3'], 'other@64']);
    expect(Array.from(a.labels)).toEqual([1, 0, 1, 0]);
    expect(Array.from(a.readRows([3]))).toEqual([2.25, 2.5, 2.75]);
    const b = (await openDataset(path.join(dir, 'f64.npy'))) as FeatureDataset;
    expect(b.classes).toEqual(['a', 'b']);
    expect(Array.from(b.readRows([1, 0]))).toEqual([1.5, 2, 2.5, 0, 0.5, 1]);
    a.close();
    b.close();
  });

  test('our .npy writer is read by numpy', () => {
    const dir = tmpDir('npy');
    fs.writeFileSync(path.join(dir, 'w.npy'), encodeNpyF32(Float32Array.from([1, 2.5, -3, 4, 5, 6]), 2, 3));
    const r = spawnSync('python3', ['-c', `import numpy as np; x=np.load('${dir}/w.npy'); print(x.dtype, x.shape, x[0,1], x[1,0])`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('float32 (2, 3) 2.5 4.0');
  });

  test('label count mismatch, wrong rank and truncation are errors', () => {
    const dir = tmpDir('npy');
    const py = `
import numpy as np
np.save('${dir}/x.npy', np.zeros((5, 2), np.float32))
np.save('${dir}/x.labels.npy', np.zeros(4, np.int32))
np.save('${dir}/y.npy', np.zeros(5, np.float32))
np.save('${dir}/labels.npy', np.zeros(5, np.int32))
`;
    expect(spawnSync('python3', ['-c', py]).status).toBe(0);
    expect(() => readFeaturesNpy(path.join(dir, 'x.npy'))).toThrow(/x\.labels\.npy: 4 labels for 5 feature rows .*label mismatch/);
    expect(() => readFeaturesNpy(path.join(dir, 'y.npy'))).toThrow(/y\.npy, field 'shape': features must be 2-D/);
    const full = fs.readFileSync(path.join(dir, 'x.npy'));
    fs.writeFileSync(path.join(dir, 'z.npy'), full.subarray(0, full.length - 12));
    expect(() => readFeaturesNpy(path.join(dir, 'z.npy'))).toThrow(/z\.npy, record 3: file has .* bytes, shape \(5, 2\) needs/);
  });
});
