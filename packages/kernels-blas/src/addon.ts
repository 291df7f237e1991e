// Loads the compiled N-API addon (build/Release/kernels_blas.node) relative to this package, from
// either src/ (tests, which run the TypeScript) or dist/ (built code): both sit one level below the
// package root. Never throws: a missing addon comes back as a reason.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions. All arrays are written in place; nothing is copied. */
export interface BlasAddon {
  setThreads(n: number): void;
  getThreads(): number;
  config(): string;
  /** C[i] = op(A[aIdx[i]]) op(B[bIdx[i]]) for i < batch; null maps are the identity. */
  bmm(
    a: Float32Array, b: Float32Array, c: Float32Array, batch: number, m: number, n: number, k: number,
    transA: boolean, transB: boolean, aIdx: Int32Array | null, bIdx: Int32Array | null,
  ): void;
  /**
   * C = alpha op(A) op(B) + beta C, row-major with leading dimensions (subarrays select blocks).
   * For hand-written fused ops that accumulate gradients over many steps.
   */
  gemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number,
  ): void;
  /**
   * PyTorch's Adam over many tensors at once, m and v in place: m = m b1 + g c1; v = v b2 + g^2 c2;
   * out = p - m / (sqrt(v) / scal[2i+1] + eps) * scal[2i] (float32, in the tfjs composition's order).
   * outs[i] may be ps[i]. Threaded over all elements when there are millions.
   */
  adam(
    ps: Float32Array[], gs: Float32Array[], ms: Float32Array[], vs: Float32Array[], outs: Float32Array[], scal: Float32Array,
    b1: number, c1: number, b2: number, c2: number, eps: number,
  ): void;
  /** dst[dstOff + r*ldd + c] = alpha * src[srcOff + r*lds + c] for r < rows, c < cols (alpha 1 by default). */
  copy2d(dst: Float32Array, dstOff: number, ldd: number, src: Float32Array, srcOff: number, lds: number, rows: number, cols: number, alpha?: number): void;
  /** out[i] = mean over j of sum_c tanh(g[i, c] + d[j, c]) w[c] (rows of width k). */
  pairTanhMean(g: Float32Array, d: Float32Array, w: Float32Array, out: Float32Array, nG: number, nD: number, k: number): void;
  /** In-place softmax over the last axis of x [blocks, rows, cols]; mask [blocks / heads, cols] (0 = excluded key) or null. */
  softmaxRows(x: Float32Array, blocks: number, rows: number, cols: number, mask: Float32Array | null, heads: number): void;
  /** ds = a * (da - rowsum(a * da)) for rows of cols. */
  softmaxBwd(a: Float32Array, da: Float32Array, ds: Float32Array, rows: number, cols: number): void;
  /** Multi-head layout: split [N*rows, h*d] -> [N*h, rows, d] (merge = false) or the inverse. */
  heads(src: Float32Array, dst: Float32Array, N: number, rows: number, h: number, d: number, merge: boolean): void;
  /** Elementwise: op 0 out = a + b; 1 out = b > 0 ? a : 0; 2 out = a; 3 out += a. */
  ewise(op: number, out: Float32Array, a: Float32Array, b: Float32Array | null, n: number): void;
  /** out[c] (+)= sum over rows of x[r * cols + c]. */
  colSum(x: Float32Array, rows: number, cols: number, out: Float32Array, accumulate: boolean): void;
  /** dst row dstRows[i] += src row srcRows[i] for i < count (rows of `width` floats). */
  addRows(dst: Float32Array, dstRows: Int32Array, src: Float32Array, srcRows: Int32Array, count: number, width: number): void;
  /** GRU cell elementwise forward (gates r, z, n); gh and hIn null together for a zero hidden input. */
  gruFwd(
    table: Float32Array, types: Int32Array, gh: Float32Array | null, bhh: Float32Array, hIn: Float32Array | null,
    r: Float32Array, z: Float32Array, nn: Float32Array, ghn: Float32Array, h: Float32Array, B: number, H: number,
  ): void;
  /** GRU cell elementwise backward: writes dgh and dhIn (direct part), accumulates dTable rows and dbhh. */
  gruBwd(
    dh: Float32Array, hIn: Float32Array | null, r: Float32Array, z: Float32Array, nn: Float32Array, ghn: Float32Array,
    types: Int32Array, dgh: Float32Array, dhIn: Float32Array | null, dTable: Float32Array, dbhh: Float32Array, B: number, H: number,
  ): void;
  /** D-VAE gated message forward from the two projections (vid column v added here). */
  msgFwd(a: Float32Array, c: Float32Array, m: Float32Array, wg: Float32Array, bg: Float32Array, wm: Float32Array, W: number, v: number, B: number, H: number): void;
  /** Its backward: da, dc and the vid-column / bias gradients. */
  msgBwd(
    dm: Float32Array, g: Float32Array, c: Float32Array, da: Float32Array, dc: Float32Array, dWg: Float32Array, dbg: Float32Array,
    dWm: Float32Array, W: number, v: number, B: number, H: number,
  ): void;
  /** In place y = act(y + bias); modes 0 none, 1 scalar, 2 per last-dim column, 3 full. */
  epilogue(
    y: Float32Array, n: number, bias: Float32Array | null, biasMode: number, act: number, alpha: number,
    prelu: Float32Array | null, preluMode: number,
  ): void;
  conv2d(x: Float32Array, w: Float32Array, y: Float32Array, p: Int32Array): void;
  conv2dBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, p: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, p: Int32Array): void;
  depthwise(x: Float32Array, w: Float32Array, y: Float32Array, p: Int32Array): void;
  depthwiseBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, p: Int32Array): void;
  depthwiseBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, p: Int32Array): void;
}

const ADDON_FILE = path.join('build', 'Release', 'kernels_blas.node');

function packageRoots(): string[] {
  const roots: string[] = [];
  try {
    roots.push(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'));
  } catch {
    // not a file: URL (bundled elsewhere); fall through to module resolution
  }
  try {
    const req = createRequire(import.meta.url);
    roots.push(path.resolve(path.dirname(req.resolve('@metad2a/kernels-blas')), '..'));
  } catch {
    // not resolvable from here
  }
  return [...new Set(roots)];
}

export interface AddonLoad {
  addon: BlasAddon | null;
  reason?: string;
  file?: string;
}

/** Loads build/Release/kernels_blas.node from the first package root that has one (uncached). */
/**
 * OpenBLAS' pool threads spin for 2^28 cycles (~0.1 s) after each threaded product before they
 * sleep; our own threads then share a core with a spinning one and run at half speed (measured: a
 * generator training step with 2 threads took 110 ms wall and 219 ms CPU, 93 ms and 141 ms with
 * the shortest timeout). OpenBLAS reads this when the library loads, so it is set before.
 */
export const OPENBLAS_TIMEOUT_ENV = 'OPENBLAS_THREAD_TIMEOUT';

export function loadAddonFrom(roots: readonly string[]): AddonLoad {
  process.env[OPENBLAS_TIMEOUT_ENV] ??= '4';
  for (const root of roots) {
    const file = path.join(root, ADDON_FILE);
    if (!fs.existsSync(file)) continue;
    try {
      const req = createRequire(import.meta.url);
      return { addon: req(file) as BlasAddon, file };
    } catch (e) {
      return { addon: null, reason: `addon ${file} failed to load: ${(e as Error).message.split('\n')[0]}` };
    }
  }
  // The install script leaves the build failure's likely cause here.
  for (const root of roots) {
    try {
      const note = JSON.parse(fs.readFileSync(path.join(root, 'build', 'no-addon.json'), 'utf8')) as { reason?: string };
      if (note.reason) return { addon: null, reason: `addon not built: ${note.reason}` };
    } catch {
      // no note
    }
  }
  return {
    addon: null,
    reason: `addon not built (no ${ADDON_FILE}); run 'npm rebuild @metad2a/kernels-blas' with libopenblas-dev and a C compiler installed`,
  };
}

let cached: AddonLoad | null = null;

export function loadAddon(): AddonLoad {
  if (!cached) cached = loadAddonFrom(packageRoots());
  return cached;
}
