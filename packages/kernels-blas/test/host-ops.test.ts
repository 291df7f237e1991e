import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { blasAddon, fusedAddon, hostTensor, hostView, type BlasAddon } from '../src/index.js';
import { rand, setup } from './helpers.js';

// The addon's helpers for host-side fused ops, against Float64 references written from their
// definitions, and the aliasing wasm Identity.
let A: BlasAddon;
beforeAll(async () => {
  await setup();
  A = blasAddon()!;
});

const sig = (v: number) => 1 / (1 + Math.exp(-v));
function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < b.length; i++) if (Math.abs(a[i] - b[i]) > tol * Math.max(1, Math.abs(b[i]))) throw new Error(`[${i}] ${a[i]} vs ${b[i]}`);
}

describe('host-op helpers', () => {
  it('gemm: transposes, leading dimensions (sub-blocks), alpha and beta', () => {
    const M = 5, N = 4, K = 6, lda = 9, ldb = 7, ldc = 6;
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = rand((ta ? K : M) * lda, 1);
      const b = rand((tb ? N : K) * ldb, 2);
      const c = rand(M * ldc, 3);
      const ref = Float64Array.from(c);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += (ta ? a[k * lda + i] : a[i * lda + k]) * (tb ? b[j * ldb + k] : b[k * ldb + j]);
          ref[i * ldc + j] = 0.5 * s + 2 * c[i * ldc + j];
        }
      A.gemm(ta, tb, M, N, K, 0.5, a, lda, b, ldb, 2, c, ldc);
      close(c, ref, 1e-5);
    }
    expect(() => A.gemm(false, false, 5, 4, 6, 1, new Float32Array(10), 6, rand(24, 1), 4, 0, new Float32Array(20), 4)).toThrow(/A too small/);
  });

  it('gruFwd / gruBwd: torch GRUCell gates and their gradients (fast exp within 2e-6)', () => {
    const B = 3, H = 37, nvt = 4, H3 = 3 * H;
    const table = rand(nvt * H3, 4).map((v) => 4 * v);
    const types = Int32Array.of(2, 0, 3);
    const bhh = rand(H3, 5);
    const hIn = rand(B * H, 6);
    const gh = rand(B * H3, 7).map((v) => 3 * v);
    const out = () => Array.from({ length: 5 }, () => new Float32Array(B * H));
    for (const withH of [true, false]) {
      const [r, z, nn, ghn, h] = out();
      A.gruFwd(table, types, withH ? gh : null, bhh, withH ? hIn : null, r, z, nn, ghn, h, B, H);
      const dh = rand(B * H, 8);
      const dgh = new Float32Array(B * H3);
      const dhIn = new Float32Array(B * H);
      const dTable = new Float32Array(nvt * H3);
      const dbhh = new Float32Array(H3);
      A.gruBwd(dh, withH ? hIn : null, r, z, nn, ghn, types, dgh, withH ? dhIn : null, dTable, dbhh, B, H);
      const refDTable = new Float64Array(nvt * H3);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < H; j++) {
          const gi = (k: number) => table[types[b] * H3 + k * H + j];
          const g = (k: number) => (withH ? gh[b * H3 + k * H + j] : 0) + bhh[k * H + j];
          const x = withH ? hIn[b * H + j] : 0;
          const rr = sig(gi(0) + g(0));
          const zz = sig(gi(1) + g(1));
          const nv = Math.tanh(gi(2) + rr * g(2));
          const i = b * H + j;
          close([r[i], z[i], nn[i], ghn[i], h[i]], [rr, zz, nv, g(2), (1 - zz) * nv + zz * x], 2e-6);
          // gradients of h' = (1 - z) n + z x
          const d = dh[i];
          const dpn = d * (1 - zz) * (1 - nv * nv);
          const dpr = dpn * g(2) * rr * (1 - rr);
          const dpz = d * (x - nv) * zz * (1 - zz);
          close([dgh[b * H3 + j], dgh[b * H3 + H + j], dgh[b * H3 + 2 * H + j]], [dpr, dpz, dpn * rr], 1e-5);
          if (withH) close([dhIn[i]], [d * zz], 1e-6);
          refDTable[types[b] * H3 + j] += dpr;
          refDTable[types[b] * H3 + H + j] += dpz;
          refDTable[types[b] * H3 + 2 * H + j] += dpn;
        }
      close(dTable, refDTable, 1e-5);
    }
  });

  it('msgFwd / msgBwd: sigmoid gate with the vid column, and its gradients', () => {
    const B = 2, H = 5, n = 3, W = H + n, v = 1;
    const wg = rand(H * W, 9), wm = rand(H * W, 10), bg = rand(H, 11);
    const a0 = rand(B * H, 12), c0 = rand(B * H, 13);
    const a = a0.slice(), c = c0.slice(), m = new Float32Array(B * H);
    A.msgFwd(a, c, m, wg, bg, wm, W, v, B, H);
    const dm = rand(B * H, 14);
    const da = new Float32Array(B * H), dc = new Float32Array(B * H);
    const dWg = new Float32Array(H * W), dbg = new Float32Array(H), dWm = new Float32Array(H * W);
    A.msgBwd(dm, a, c, da, dc, dWg, dbg, dWm, W, v, B, H);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < H; j++) {
        const i = b * H + j;
        const g = sig(a0[i] + wg[j * W + H + v] + bg[j]);
        const cc = c0[i] + wm[j * W + H + v];
        close([m[i], da[i], dc[i]], [g * cc, dm[i] * cc * g * (1 - g), dm[i] * g], 2e-6);
      }
    for (let j = 0; j < H; j++) {
      close([dWg[j * W + H + v], dbg[j], dWm[j * W + H + v]], [da[j] + da[H + j], da[j] + da[H + j], dc[j] + dc[H + j]], 1e-6);
      expect(dWg[j * W]).toBe(0); // only the vid column is touched here
    }
  });

  it('addRows, copy2d (with a scale), ewise and colSum', () => {
    const src = rand(4 * 3, 15);
    const dst = new Float32Array(3 * 3);
    A.addRows(dst, Int32Array.of(2, 0, 2), src, Int32Array.of(1, 3, 0), 3, 3);
    close(dst, [src[9], src[10], src[11], 0, 0, 0, src[3] + src[0], src[4] + src[1], src[5] + src[2]], 1e-7);
    expect(() => A.addRows(dst, Int32Array.of(3), src, Int32Array.of(0), 1, 3)).toThrow(/out of range/);
    const m = rand(3 * 5, 16);
    const blk = new Float32Array(2 * 4).fill(7);
    A.copy2d(blk, 1, 4, m, 2, 5, 2, 3, -2);
    close(blk, [7, -2 * m[2], -2 * m[3], -2 * m[4], 7, -2 * m[7], -2 * m[8], -2 * m[9]], 1e-7);
    const x = rand(6, 17), y = rand(6, 18), o = new Float32Array(6);
    A.ewise(0, o, x, y, 6);
    close(o, Array.from(x, (v, i) => v + y[i]), 1e-7);
    A.ewise(1, o, x, y, 6);
    close(o, Array.from(x, (v, i) => (y[i] > 0 ? v : 0)), 0);
    const cs = new Float32Array(5);
    A.colSum(m, 3, 5, cs, false);
    close(cs, [0, 1, 2, 3, 4].map((c) => m[c] + m[5 + c] + m[10 + c]), 1e-6);
  });

  it('fused ops are on for this backend; hostTensor/hostView write and read tensors in place', () => {
    expect(fusedAddon()).not.toBeNull();
    const t = hostTensor([2, 3]);
    hostView(t).set([1, 2, 3, 4, 5, 6]);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    t.dispose();
  });

  it('wasm Identity aliases (clone shares the data) and reference counting keeps it alive', () => {
    const before = tf.memory().numBytes;
    const x = tf.tensor1d([1, 2, 3]);
    const y = x.clone();
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    const z = tf.add(y, 1);
    expect(Array.from(z.dataSync())).toEqual([2, 3, 4]);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([y, z]);
    expect(tf.memory().numBytes).toBe(before);
  });
});

// The same helpers on their multi-threaded paths (column-split gemm for few rows, heads, softmax
// and its gradient over many rows), against Float64 / index references.
describe('host-op helpers with 2 threads', () => {
  const withThreads = (n: number, fn: () => void) => {
    const before = A.getThreads();
    A.setThreads(n);
    try {
      fn();
    } finally {
      A.setThreads(before);
    }
  };

  it('gemm split by columns (few rows) or by rows (all transposes, leading dimensions, alpha, beta)', () => {
    const N = 520, K = 512, lda = K + 3, ldb = N + 5, ldc = N + 2;
    for (const M of [24, 200])
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const ldA = ta ? M + 3 : lda;
      const ldB = tb ? K + 5 : ldb;
      const a = rand((ta ? K : M) * ldA, 11);
      const b = rand((tb ? N : K) * ldB, 12);
      const c = rand(M * ldc, 13);
      const ref = Float64Array.from(c);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += (ta ? a[k * ldA + i] : a[i * ldA + k]) * (tb ? b[j * ldB + k] : b[k * ldB + j]);
          ref[i * ldc + j] = 0.5 * s + 2 * c[i * ldc + j];
        }
      withThreads(2, () => A.gemm(ta, tb, M, N, K, 0.5, a, ldA, b, ldB, 2, c, ldc));
      close(c, ref, 1e-4);
    }
  });

  it('heads, softmaxRows (with a key mask) and softmaxBwd over many rows', () => {
    const N = 100, rows = 20, h = 4, d = 40, dv = h * d;
    const src = rand(N * rows * dv, 14);
    const split = new Float32Array(src.length);
    const back = new Float32Array(src.length);
    withThreads(2, () => {
      A.heads(src, split, N, rows, h, d, false);
      A.heads(split, back, N, rows, h, d, true);
    });
    for (const [s, j, i, t] of [[0, 0, 0, 0], [99, 3, 19, 39], [57, 2, 11, 7]]) {
      expect(split[((s * h + j) * rows + i) * d + t]).toBe(src[(s * rows + i) * dv + j * d + t]);
    }
    expect(back).toEqual(src);

    const nb = 400, cols = 20;
    const x = rand(nb * rows * cols, 15).map((v) => 6 * v);
    const mask = rand((nb / h) * cols, 16).map((v) => (v > -0.5 ? 1 : 0));
    const y = Float32Array.from(x);
    withThreads(2, () => A.softmaxRows(y, nb, rows, cols, mask, h));
    const ref = new Float64Array(x.length);
    for (let b = 0; b < nb; b++)
      for (let r = 0; r < rows; r++) {
        const o = (b * rows + r) * cols;
        const mk = (c: number) => mask[Math.floor(b / h) * cols + c] !== 0;
        let mx = -Infinity;
        for (let c = 0; c < cols; c++) if (mk(c)) mx = Math.max(mx, x[o + c]);
        let sum = 0;
        for (let c = 0; c < cols; c++) sum += mk(c) ? Math.exp(x[o + c] - mx) : 0;
        for (let c = 0; c < cols; c++) ref[o + c] = sum > 0 && mk(c) ? Math.exp(x[o + c] - mx) / sum : 0;
      }
    close(y, ref, 2e-6);

    const da = rand(y.length, 17);
    const ds = new Float32Array(y.length);
    withThreads(2, () => A.softmaxBwd(y, da, ds, nb * rows, cols));
    const refDs = new Float64Array(y.length);
    for (let r = 0; r < nb * rows; r++) {
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += y[r * cols + c] * da[r * cols + c];
      for (let c = 0; c < cols; c++) refDs[r * cols + c] = y[r * cols + c] * (da[r * cols + c] - dot);
    }
    close(ds, refDs, 1e-5);
  });
});
