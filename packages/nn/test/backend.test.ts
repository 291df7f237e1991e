import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '@metad2a/core';
import { BACKEND_ENV, backendInfo, initBackend, parseBackendName } from '../src/index.js';

// One process per test file (pool: forks), so these tests see a fresh backend state; they run in order.
const require = createRequire(import.meta.url);
const installed = (pkg: string) => {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const gpuNative = installed('@tensorflow/tfjs-node-gpu');
const cpuNative = installed('@tensorflow/tfjs-node');

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

describe('initBackend', () => {
  it('rejects an unknown backend name from the environment or the option with a ConfigError', async () => {
    vi.stubEnv(BACKEND_ENV, 'tpu');
    await expect(initBackend()).rejects.toThrow(ConfigError);
    await expect(initBackend()).rejects.toThrow(`invalid option '${BACKEND_ENV}': unknown backend 'tpu' (use one of auto, tensorflow-gpu, tensorflow, wasm, cpu)`);
    vi.unstubAllEnvs();
    await expect(initBackend({ force: 'webgl' })).rejects.toThrow(/invalid option 'backend': unknown backend 'webgl'/);
    expect(() => parseBackendName('CPU', '--backend')).toThrow(/invalid option '--backend': unknown backend 'CPU'/);
    expect(parseBackendName('', '--backend')).toBe('auto');
    expect(backendInfo()).toBeNull();
  });

  it.skipIf(gpuNative || cpuNative)('auto picks wasm here, says why the native ones were skipped, and logs the choice once', async () => {
    vi.stubEnv(BACKEND_ENV, '');
    vi.stubEnv('METAD2A_QUIET', '');
    const writes: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (writes.push(String(chunk)), true));
    const info = await initBackend();
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.skipped.map((s) => s.name)).toEqual(['tensorflow-gpu', 'tensorflow']);
    expect(info.skipped[0].reason).toMatch(/@tensorflow\/tfjs-node-gpu is not installed/);
    expect(await initBackend()).toBe(info); // cached: no second start, no second log line
    const logged = writes.filter((w) => w.includes('[metad2a] tfjs backend'));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^\[metad2a\] tfjs backend: wasm/);
  });

  it.skipIf(cpuNative)('forcing a native backend that is not installed fails with a clear message and keeps the current one', async () => {
    const before = tf.getBackend();
    await expect(initBackend({ force: 'tensorflow', quiet: true })).rejects.toThrow(ConfigError);
    await expect(initBackend({ force: 'tensorflow', quiet: true })).rejects.toThrow(
      /invalid option 'backend': backend 'tensorflow' could not start: @tensorflow\/tfjs-node is not installed \(an optional dependency: its install downloads libtensorflow/,
    );
    vi.stubEnv(BACKEND_ENV, 'tensorflow-gpu');
    await expect(initBackend({ quiet: true })).rejects.toThrow(new RegExp(`invalid option '${BACKEND_ENV}': backend 'tensorflow-gpu' could not start: @tensorflow/tfjs-node-gpu is not installed`));
    expect(tf.getBackend()).toBe(before);
  });

  it('forced cpu works (option and environment) and computes', async () => {
    const info = await initBackend({ force: 'cpu', quiet: true });
    expect(info).toMatchObject({ requested: 'cpu', name: 'cpu', tfName: 'cpu' });
    expect(tf.getBackend()).toBe('cpu');
    const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync());
    expect(Array.from(y)).toEqual([19, 22, 43, 50]);
    vi.stubEnv(BACKEND_ENV, 'wasm');
    expect((await initBackend({ quiet: true })).name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(backendInfo()!.name).toBe('wasm');
  });
});
