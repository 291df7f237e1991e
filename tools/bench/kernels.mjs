#!/usr/bin/env node
// Benchmarks the OpenBLAS kernels of @metad2a/kernels-blas against the stock TensorFlow.js kernels,
// side by side in one run, at the shapes this project uses. Runs against the built package:
//   (cd packages/kernels-blas && npx tsup) && node tools/bench/kernels.mjs [--quick] [--threads=1,2] [--batch=32] [--clock=cpu] [--json=out.json]
// Reports medians (of --reps timed rounds) in GFLOP/s, and images/s for a small conv net's training.
// The stock wasm backend has no Conv2DBackpropFilter / depthwise backprop kernels; for those the
// "stock" column is the stock cpu backend's kernel (what tfjs users fall back to), marked "(cpu)".
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import os from 'node:os';
import {
  blasStatus, registerBlasKernels, setBlasThreads, unregisterBlasKernels,
} from '../../packages/kernels-blas/dist/index.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const QUICK = args.quick === 'true';
const REPS = Number(args.reps ?? (QUICK ? 3 : 5));
// --clock=cpu times by this process' CPU time instead of wall time: on a busy shared machine it shows
// what the kernels cost regardless of preemption (single-threaded only, so threads are forced to 1).
const CLOCK = args.clock === 'cpu' ? 'cpu' : 'wall';
const THREADS = CLOCK === 'cpu' ? [1] : String(args.threads ?? '1,2').split(',').map(Number).filter((n) => n >= 1);
const BATCH = Number(args.batch ?? 32);
const MIN_MS = QUICK ? 60 : 200; // each timed round runs at least this long

process.env.METAD2A_QUIET = '1';
const warn = console.warn;
console.warn = (...a) => (String(a[0]).includes('tfjs-node') ? undefined : warn(...a)); // the cpu backend's banner
// The stock cpu kernels run at ~0.01-1 GFLOP/s; they are timed on this many images, not BATCH.
const STOCK_CPU_BATCH = 1;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median seconds per call of fn (which must dispose what it makes). */
function now() {
  if (CLOCK === 'wall') return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
}

function timeit(fn) {
  fn();
  const t0 = performance.now();
  fn();
  const once = Math.max(performance.now() - t0, 1e-3);
  const iters = Math.max(1, Math.ceil(MIN_MS / once));
  const per = [];
  for (let r = 0; r < REPS; r++) {
    const s = now();
    for (let i = 0; i < iters; i++) fn();
    per.push((now() - s) / iters / 1e3);
  }
  return median(per);
}

function rnd(shape, seed = 1) {
  return tf.tidy(() => tf.randomUniform(shape, -1, 1, 'float32', seed));
}

async function use(backend, ours) {
  await tf.setBackend(backend);
  await tf.ready();
  if (ours) registerBlasKernels(backend);
  else unregisterBlasKernels(backend);
}

const run = (name, inputs, attrs) => tf.engine().runKernel(name, inputs, attrs);

/** Each case: name, flops, make(backend) -> { fn, dispose }, stockBackend. */
function matmulCase(label, batch, m, k, n, ta = false, tb = false) {
  return {
    group: 'matmul',
    label,
    shape: `${batch > 1 ? `${batch}x` : ''}[${m}x${k}]${ta ? 'ᵀ' : ''}·[${k}x${n}]${tb ? 'ᵀ' : ''}`,
    flops: 2 * batch * m * n * k,
    stock: 'wasm',
    make() {
      const a = rnd(batch > 1 ? [batch, ta ? k : m, ta ? m : k] : [ta ? k : m, ta ? m : k], 1);
      const b = rnd(batch > 1 ? [batch, tb ? n : k, tb ? k : n] : [tb ? n : k, tb ? k : n], 2);
      return { fn: () => tf.matMul(a, b, ta, tb).dispose(), dispose: () => tf.dispose([a, b]) };
    },
  };
}

function convCases(label, N, H, W, C, CO, F, stride = 1, pad = 'same') {
  const OH = Math.ceil(H / stride);
  const OW = Math.ceil(W / stride);
  const flops = 2 * N * OH * OW * CO * F * F * C;
  const perImage = flops / N;
  const shape = `${N}x${H}x${W}x${C}→${CO} ${F}x${F}${stride > 1 ? ` s${stride}` : ''}`;
  const conv = { strides: stride, pad, dataFormat: 'NHWC', dilations: 1 };
  return [
    {
      group: 'conv', label: `${label} fwd`, shape, flops, perImage, stock: 'wasm',
      make(n = N) {
        const x = rnd([n, H, W, C], 1);
        const w = rnd([F, F, C, CO], 2);
        return { fn: () => run('Conv2D', { x, filter: w }, conv).dispose(), dispose: () => tf.dispose([x, w]) };
      },
    },
    {
      group: 'conv', label: `${label} bwd-input`, shape, flops, perImage, stock: 'wasm',
      make(n = N) {
        const dy = rnd([n, OH, OW, CO], 1);
        const w = rnd([F, F, C, CO], 2);
        const attrs = { ...conv, inputShape: [n, H, W, C] };
        return { fn: () => run('Conv2DBackpropInput', { dy, filter: w }, attrs).dispose(), dispose: () => tf.dispose([dy, w]) };
      },
    },
    {
      group: 'conv', label: `${label} bwd-filter`, shape, flops, perImage, stock: 'cpu',
      make(n = N) {
        const x = rnd([n, H, W, C], 1);
        const dy = rnd([n, OH, OW, CO], 2);
        const attrs = { ...conv, filterShape: [F, F, C, CO] };
        return { fn: () => run('Conv2DBackpropFilter', { x, dy }, attrs).dispose(), dispose: () => tf.dispose([x, dy]) };
      },
    },
  ];
}

function depthwiseCases(label, N, H, W, C, F, stride = 1) {
  const OH = Math.ceil(H / stride);
  const OW = Math.ceil(W / stride);
  const flops = 2 * N * OH * OW * C * F * F;
  const perImage = flops / N;
  const shape = `${N}x${H}x${W}x${C} dw${F}x${F}${stride > 1 ? ` s${stride}` : ''}`;
  const conv = { strides: stride, pad: 'same', dataFormat: 'NHWC', dilations: 1 };
  return [
    {
      group: 'conv', label: `${label} fwd`, shape, flops, perImage, stock: 'wasm',
      make(n = N) {
        const x = rnd([n, H, W, C], 1);
        const w = rnd([F, F, C, 1], 2);
        return { fn: () => run('DepthwiseConv2dNative', { x, filter: w }, conv).dispose(), dispose: () => tf.dispose([x, w]) };
      },
    },
    {
      group: 'conv', label: `${label} bwd-input`, shape, flops, perImage, stock: 'cpu',
      make(n = N) {
        const dy = rnd([n, OH, OW, C], 1);
        const w = rnd([F, F, C, 1], 2);
        const attrs = { ...conv, inputShape: [n, H, W, C] };
        return { fn: () => run('DepthwiseConv2dNativeBackpropInput', { dy, filter: w }, attrs).dispose(), dispose: () => tf.dispose([dy, w]) };
      },
    },
    {
      group: 'conv', label: `${label} bwd-filter`, shape, flops, perImage, stock: 'cpu',
      make(n = N) {
        const x = rnd([n, H, W, C], 1);
        const dy = rnd([n, OH, OW, C], 2);
        const attrs = { ...conv, filterShape: [F, F, C, 1] };
        return { fn: () => run('DepthwiseConv2dNativeBackpropFilter', { x, dy }, attrs).dispose(), dispose: () => tf.dispose([x, dy]) };
      },
    },
  ];
}

const B = BATCH;
const CASES = [
  // Set encoder (B=32 sets x N=20 items, D=512): projections, attention, backward transposes.
  matmulCase('set-enc Q/K/V', 1, 32 * 20, 512, 512),
  matmulCase('set-enc out→56', 1, 32 * 20, 512, 56),
  matmulCase('set-enc dW (Xᵀ·dY)', 1, 512, 32 * 20, 512, true, false),
  matmulCase('set-enc dX (dY·Wᵀ)', 1, 32 * 20, 512, 512, false, true),
  matmulCase('set-enc attention', 32 * 4, 20, 128, 20),
  // D-VAE: batch x 56 hidden, GRU gates 3*56.
  matmulCase('D-VAE GRU gates', 1, B, 56, 168),
  matmulCase('D-VAE GRU gates', 1, 8 * B, 56, 168),
  // Predictor MLP.
  matmulCase('predictor MLP', 1, B, 568, 256),
  // NB201 cell network.
  ...convCases('NB201 C16 32²', B, 32, 32, 16, 16, 3),
  ...convCases('NB201 C16 32² 1x1', B, 32, 32, 16, 16, 1),
  ...convCases('NB201 C32 16²', B, 16, 16, 32, 32, 3),
  ...convCases('NB201 C64 8²', B, 8, 8, 64, 64, 3),
  ...convCases('NB201 C64 8² 1x1', B, 8, 8, 64, 64, 1),
  ...convCases('NB201 reduce 16→32', B, 32, 32, 16, 32, 3, 2),
  // MBV3 block: 1x1 expand, 5x5 depthwise, 1x1 project.
  ...convCases('MBV3 expand 40→120', B, 28, 28, 40, 120, 1),
  ...depthwiseCases('MBV3 dw5x5 C120', B, 28, 28, 120, 5),
  ...convCases('MBV3 project 120→40', B, 28, 28, 120, 40, 1),
];

const selected = QUICK ? CASES.filter((_, i) => i % 2 === 0 || CASES[i].group === 'conv') : CASES;

/** Seconds per call at the full batch (stock cpu kernels: measured on fewer images, scaled by FLOPs). */
async function measure(c, backend, ours, threads) {
  await use(backend, ours);
  if (ours) setBlasThreads(threads);
  const small = !ours && backend === 'cpu' && c.perImage != null;
  const { fn, dispose } = small ? c.make(STOCK_CPU_BATCH) : c.make();
  try {
    const s = timeit(fn);
    return small ? (s * c.flops) / (c.perImage * STOCK_CPU_BATCH) : s;
  } catch (e) {
    return { error: e.message.split('\n')[0] };
  } finally {
    dispose();
  }
}

function fmt(x, d = 1) {
  return typeof x === 'number' ? x.toFixed(d) : String(x);
}

async function kernelTable() {
  const rows = [];
  for (const c of selected) {
    const stockS = await measure(c, c.stock, false, 1);
    const row = { group: c.group, label: c.label, shape: c.shape, stock: c.stock, stockGflops: typeof stockS === 'number' ? c.flops / stockS / 1e9 : stockS.error, ours: {} };
    for (const t of THREADS) {
      const s = await measure(c, 'wasm', true, t);
      row.ours[t] = typeof s === 'number' ? { gflops: c.flops / s / 1e9, ms: s * 1e3, speedup: typeof stockS === 'number' ? stockS / s : NaN } : s;
      row.stockMs = typeof stockS === 'number' ? stockS * 1e3 : NaN;
    }
    rows.push(row);
    const ours = THREADS.map((t) => `${t}t ${fmt(row.ours[t].gflops)} GF/s (${fmt(row.ours[t].speedup)}x)`).join('  ');
    console.log(`${c.label.padEnd(26)} ${c.shape.padEnd(28)} stock ${c.stock === 'cpu' ? '(cpu)' : '     '} ${fmt(row.stockGflops, 2).padStart(6)} GF/s | ours ${ours}`);
  }
  return rows;
}

/** Conv forward + both backward kernels per layer: total time, stock vs ours. Stock = the stock
 * wasm kernel where one exists, else the stock cpu kernel that tfjs would need instead. */
function convTotals(rows) {
  const byLayer = new Map();
  for (const r of rows.filter((x) => x.group === 'conv')) {
    const layer = r.label.replace(/ (fwd|bwd-input|bwd-filter)$/, '');
    const e = byLayer.get(layer) ?? { stock: 0, ours: Object.fromEntries(THREADS.map((t) => [t, 0])), stockWasm: 0, oursWasm: Object.fromEntries(THREADS.map((t) => [t, 0])) };
    e.stock += r.stockMs;
    for (const t of THREADS) e.ours[t] += r.ours[t].ms;
    if (r.stock === 'wasm') {
      // The part the stock wasm backend can run at all.
      e.stockWasm += r.stockMs;
      for (const t of THREADS) e.oursWasm[t] += r.ours[t].ms;
    }
    byLayer.set(layer, e);
  }
  console.log('\nconv forward + backward (input and filter), per layer:');
  for (const [layer, e] of byLayer) {
    console.log(`  ${layer.padEnd(24)} stock ${fmt(e.stock, 1).padStart(8)} ms | ${THREADS.map((t) => `${t}t ${fmt(e.ours[t], 2)} ms = ${fmt(e.stock / e.ours[t])}x`).join('  ')}` +
      `  | stock-wasm kernels only: ${THREADS.map((t) => `${t}t ${fmt(e.stockWasm / e.oursWasm[t])}x`).join(' ')}`);
  }
  return Object.fromEntries(byLayer);
}

/** Images/s of SGD training of a small conv net (2 conv layers + dense, batch B, 32x32x3). */
async function trainBench(backend, ours, threads) {
  await use(backend, ours);
  if (ours) setBlasThreads(threads);
  const x = rnd([B, 32, 32, 3], 1);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: B }, (_, i) => i % 10), 'int32'), 10));
  const w1 = tf.variable(tf.mul(rnd([3, 3, 3, 16], 2), 0.3));
  const w2 = tf.variable(tf.mul(rnd([3, 3, 16, 32], 3), 0.1));
  const wd = tf.variable(tf.mul(rnd([16 * 16 * 32, 10], 4), 0.01));
  const opt = tf.train.sgd(0.01);
  const step = () => {
    const loss = opt.minimize(() => {
      const h1 = tf.relu(tf.conv2d(x, w1, 1, 'same'));
      const h2 = tf.relu(tf.conv2d(h1, w2, 2, 'same'));
      return tf.losses.softmaxCrossEntropy(y, tf.matMul(tf.reshape(h2, [B, -1]), wd));
    }, true);
    loss.dataSync();
    loss.dispose();
  };
  try {
    const s = timeit(step);
    return B / s;
  } catch (e) {
    return `unsupported (${e.message.split('\n')[0].slice(0, 70)})`;
  } finally {
    tf.dispose([x, y, w1, w2, wd]);
    opt.dispose();
  }
}

async function main() {
  await tf.setBackend('cpu');
  await tf.setBackend('wasm');
  await tf.ready();
  const st = registerBlasKernels('wasm');
  if (!st.active) {
    console.error(`OpenBLAS kernels inactive: ${st.reason}`);
    process.exit(1);
  }
  console.log(`node ${process.version}, ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), ${blasStatus().config}`);
  console.log(`median of ${REPS} rounds (each >= ${MIN_MS} ms, ${CLOCK === 'cpu' ? 'timed by process CPU time' : 'wall clock'}); batch ${B}; ours with OpenBLAS threads ${THREADS.join(', ')}`);
  // Wall-clock rates on a shared machine depend on what else runs: say how busy it was.
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} (1/5/15 min, ${os.availableParallelism()} cores)\n`);
  const rows = await kernelTable();
  const totals = convTotals(rows);
  console.log(`\ntraining a small conv net (conv3x3 3→16, conv3x3 s2 16→32, dense→10; batch ${B}, 32x32x3), images/s:`);
  const train = { 'stock cpu': await trainBench('cpu', false, 1), 'stock wasm': await trainBench('wasm', false, 1) };
  for (const t of THREADS) train[`wasm+OpenBLAS ${t}t`] = await trainBench('wasm', true, t);
  for (const [k, v] of Object.entries(train)) console.log(`  ${k.padEnd(20)} ${typeof v === 'number' ? v.toFixed(1) : v}`);
  // The issue's targets (2 cores): matmul >= 50 GFLOP/s at the set-encoder shapes; conv fwd+bwd >= 20x stock.
  const tmax = Math.max(...THREADS);
  const se = rows.filter((r) => r.label.startsWith('set-enc') && r.label !== 'set-enc attention');
  const seMed = median(se.map((r) => r.ours[tmax].gflops));
  const ratios = Object.values(totals).map((e) => e.stock / e.ours[tmax]);
  const wasmOnly = Object.values(totals).map((e) => e.stockWasm / e.oursWasm[tmax]);
  console.log(`\nsummary (${tmax} threads): set-encoder matmul median ${seMed.toFixed(1)} GFLOP/s (target >= 50); ` +
    `conv fwd+bwd vs stock: min ${Math.min(...ratios).toFixed(0)}x, median ${median(ratios).toFixed(0)}x (target >= 20x); ` +
    `counting only the kernels stock wasm has (fwd, and conv bwd-input): min ${Math.min(...wasmOnly).toFixed(1)}x, median ${median(wasmOnly).toFixed(1)}x`);
  console.log(`load average at end: ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  if (args.json) {
    const fs = await import('node:fs');
    fs.writeFileSync(args.json, JSON.stringify({ rows, totals, train, threads: THREADS, batch: B, reps: REPS }, null, 2));
  }
}

await main();
