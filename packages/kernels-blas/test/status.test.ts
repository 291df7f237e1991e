import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BLAS_KERNEL_NAMES, blasAddon, blasStatus, loadAddonFrom, registerBlasKernels, resolveThreads, setBlasThreads,
  unregisterBlasKernels,
} from '../src/index.js';

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

afterEach(() => {
  delete process.env.METAD2A_BLAS;
});

describe('registration', () => {
  it('METAD2A_BLAS=off keeps the stock kernels and says why', () => {
    process.env.METAD2A_BLAS = 'off';
    const before = tf.getKernel('BatchMatMul', 'wasm');
    const s = registerBlasKernels('wasm');
    expect(s).toMatchObject({ active: false, reason: 'disabled by METAD2A_BLAS=off', kernels: [] });
    expect(blasStatus().reason).toBe('disabled by METAD2A_BLAS=off');
    expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(before);
  });

  it('other backends are refused with a reason, without throwing', () => {
    const s = registerBlasKernels('webgl');
    expect(s.active).toBe(false);
    expect(s.reason).toMatch(/webgl/);
  });

  it('registers every kernel on wasm, idempotently, and unregistering restores the stock ones', () => {
    const stock = tf.getKernel('Conv2D', 'wasm');
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // the gap we fill
    const s = registerBlasKernels('wasm');
    expect(s.active, s.reason).toBe(true);
    expect(s.kernels).toEqual([...BLAS_KERNEL_NAMES]);
    expect(s.kernels).toEqual(expect.arrayContaining(['BatchMatMul', '_FusedMatMul', 'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter',
      'DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'UnsortedSegmentSum']));
    expect(s.threads).toBeGreaterThanOrEqual(1);
    expect(s.config).toMatch(/OpenBLAS/);
    const ours = tf.getKernel('Conv2D', 'wasm');
    expect(ours).not.toBe(stock);
    expect(registerBlasKernels('wasm').active).toBe(true);
    expect(tf.getKernel('Conv2D', 'wasm')).toBe(ours); // not wrapped twice
    unregisterBlasKernels('wasm');
    expect(tf.getKernel('Conv2D', 'wasm')).toBe(stock);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(registerBlasKernels('wasm').active).toBe(true);
    // Turning it off later also takes the registered kernels away.
    process.env.METAD2A_BLAS = 'off';
    expect(registerBlasKernels('wasm').active).toBe(false);
    expect(tf.getKernel('Conv2D', 'wasm')).toBe(stock);
    delete process.env.METAD2A_BLAS;
    expect(registerBlasKernels('wasm').active).toBe(true);
  });

  it('a case the kernels do not handle (int32 matmul) falls back to the stock kernel', () => {
    registerBlasKernels('wasm');
    // The stock wasm BatchMatMul rejects int32 with its own message: proof the call reached it.
    expect(() => tf.matMul(tf.tensor2d([1, 2], [1, 2], 'int32'), tf.tensor2d([3, 4], [2, 1], 'int32'))).toThrow(/non-float32/);
  });
});

describe('threads', () => {
  it('METAD2A_BLAS_THREADS, then OPENBLAS_NUM_THREADS, then the machine', () => {
    expect(resolveThreads({ METAD2A_BLAS_THREADS: '3', OPENBLAS_NUM_THREADS: '2' })).toMatchObject({ threads: 3, source: 'METAD2A_BLAS_THREADS' });
    expect(resolveThreads({ OPENBLAS_NUM_THREADS: '2' })).toMatchObject({ threads: 2, source: 'OPENBLAS_NUM_THREADS' });
    const auto = resolveThreads({});
    expect(auto).toMatchObject({ threads: os.availableParallelism(), source: 'availableParallelism', warnings: [] });
    const bad = resolveThreads({ METAD2A_BLAS_THREADS: 'two' });
    expect(bad.source).toBe('availableParallelism');
    expect(bad.warnings[0]).toMatch(/METAD2A_BLAS_THREADS='two'/);
  });

  it('setBlasThreads reaches OpenBLAS', () => {
    registerBlasKernels('wasm');
    expect(setBlasThreads(1)).toBe(1);
    expect(blasAddon()!.getThreads()).toBe(1);
    expect(blasStatus()).toMatchObject({ threads: 1, threadsFrom: 'setBlasThreads' });
    expect(setBlasThreads(2)).toBe(2);
    expect(() => setBlasThreads(0)).toThrow(RangeError);
  });
});

describe('missing addon', () => {
  it('reports the reason the install script recorded, or that nothing was built', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-'));
    try {
      expect(loadAddonFrom([dir]).reason).toMatch(/addon not built.*npm rebuild @metad2a\/kernels-blas/);
      // The install fallback, run where no compiler can be found (empty PATH).
      execFileSync(process.execPath, [path.join(pkg, 'scripts', 'report-no-addon.js'), '--out', path.join(dir, 'build')], {
        env: { PATH: '' },
        stdio: 'pipe',
      });
      const load = loadAddonFrom([dir]);
      expect(load.addon).toBeNull();
      expect(load.reason).toBe('addon not built: no C compiler found (install build-essential)');
      fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'build', 'Release', 'kernels_blas.node'), 'not a shared object');
      expect(loadAddonFrom([dir]).reason).toMatch(/failed to load/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
