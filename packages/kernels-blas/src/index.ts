// OpenBLAS-backed TensorFlow.js kernels for the wasm and cpu backends. registerBlasKernels() swaps
// the stock kernels for ours (keeping the stock ones as the fallback for cases we do not handle,
// e.g. NCHW or int32 inputs) and never throws: when the addon is missing it reports why.
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { type BlasAddon, loadAddon } from './addon.js';
import type { Ctx, Impl } from './kernels/common.js';
import {
  conv2d, conv2dBackpropFilter, conv2dBackpropInput, depthwiseBackpropFilter, depthwiseBackpropInput, depthwiseConv2d,
  fusedConv2d, fusedDepthwiseConv2d,
} from './kernels/conv.js';
import { batchMatMul, fusedMatMul } from './kernels/matmul.js';
import { unsortedSegmentSum } from './kernels/segment.js';
import { storeFor } from './store.js';
import { resolveThreads, type ThreadSource, THREADS_ENV } from './threads.js';

export interface BlasStatus {
  active: boolean;
  /** Why the kernels are inactive (absent when active). */
  reason?: string;
  /** OpenBLAS threads (and threads of our own loops). */
  threads?: number;
  /** Where the thread count came from. */
  threadsFrom?: ThreadSource;
  /** Kernel names registered (the same set on each backend in `backends`). */
  kernels: string[];
  /** Backends our kernels are registered on. */
  backends?: string[];
  /** OpenBLAS build configuration, e.g. "OpenBLAS 0.3.21 ... Cooperlake MAX_THREADS=64". */
  config?: string;
  /** Non-fatal problems, e.g. an unusable thread-count variable. */
  warnings?: string[];
}

/** Set METAD2A_BLAS=off to keep the stock kernels. */
export const DISABLE_ENV = 'METAD2A_BLAS';
export { THREADS_ENV };

/** Our kernels, by tfjs kernel name. */
const IMPLS: ReadonlyArray<readonly [string, Impl]> = [
  ['BatchMatMul', batchMatMul],
  ['_FusedMatMul', fusedMatMul],
  ['Conv2D', conv2d],
  ['FusedConv2D', fusedConv2d],
  ['Conv2DBackpropInput', conv2dBackpropInput],
  ['Conv2DBackpropFilter', conv2dBackpropFilter],
  ['DepthwiseConv2dNative', depthwiseConv2d],
  ['FusedDepthwiseConv2D', fusedDepthwiseConv2d],
  ['DepthwiseConv2dNativeBackpropInput', depthwiseBackpropInput],
  ['DepthwiseConv2dNativeBackpropFilter', depthwiseBackpropFilter],
  ['UnsortedSegmentSum', unsortedSegmentSum],
];

/**
 * Kernels that need no addon but replace costly stock ones. The wasm backend's Identity copies the
 * tensor; tfjs runs it for every clone(), and every tensor a kernel saves for its gradient is a
 * clone, so a training step copied megabytes for nothing. Tensors are immutable (Variable.assign
 * swaps the data id, nothing writes in place), so an alias with a reference count is enough, as
 * the cpu backend and wasm's own Reshape already do.
 */
const RAW: ReadonlyArray<readonly [string, string, (stock: KernelConfig | undefined) => KernelFunc]> = [
  ['Identity', 'wasm', (stock) => ((args: { inputs: { x: TensorInfo }; backend: { incRef(dataId: object): void } }) => {
    const { x } = args.inputs;
    if (x.dtype === 'string') return stock!.kernelFunc(args as unknown as Parameters<KernelFunc>[0]);
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
  }) as unknown as KernelFunc],
];

export const BLAS_KERNEL_NAMES: readonly string[] = IMPLS.map(([n]) => n);

const SUPPORTED_BACKENDS = new Set(['wasm', 'cpu']);

/** Stock kernel configs we replaced, per backend (undefined = there was none). */
const replaced = new Map<string, Map<string, KernelConfig | undefined>>();
let threadInfo: { threads: number; source: ThreadSource; warnings: string[] } | null = null;
let status: BlasStatus = { active: false, reason: 'registerBlasKernels has not been called', kernels: [] };

function inactive(reason: string): BlasStatus {
  return { active: false, reason, kernels: [], backends: [] };
}

function makeKernel(name: string, impl: Impl, backendName: string, addon: BlasAddon, stock: KernelConfig | undefined): KernelFunc {
  return ((args: { inputs: Record<string, TensorInfo>; attrs?: Record<string, unknown>; backend: unknown }) => {
    const ctx: Ctx = {
      inputs: args.inputs,
      attrs: (args.attrs ?? {}) as Ctx['attrs'],
      store: storeFor(backendName, args.backend),
      addon,
    };
    const out = impl(ctx);
    if (out) return out;
    if (stock) return stock.kernelFunc(args as Parameters<KernelFunc>[0]);
    const dtypes = Object.values(args.inputs).map((t) => t?.dtype).join(', ');
    throw new Error(`kernels-blas: ${name} on '${backendName}' does not support this case (dtypes ${dtypes}, data format ${String(args.attrs?.dataFormat ?? 'NHWC')})`);
  }) as unknown as KernelFunc;
}

function currentStatus(addon: BlasAddon): BlasStatus {
  const backends = [...replaced.keys()];
  return {
    active: backends.length > 0,
    threads: addon.getThreads(),
    threadsFrom: threadInfo?.source,
    kernels: [...BLAS_KERNEL_NAMES],
    backends,
    config: addon.config(),
    ...(threadInfo && threadInfo.warnings.length ? { warnings: threadInfo.warnings } : {}),
  };
}

/**
 * Registers the OpenBLAS kernels for `backendName` ('wasm' or 'cpu'). Never throws; idempotent.
 * Returns the status, inactive with a reason when disabled (METAD2A_BLAS=off), when the addon is
 * missing, or for another backend.
 */
export function registerBlasKernels(backendName: string): BlasStatus {
  try {
    if ((process.env[DISABLE_ENV] ?? '').toLowerCase() === 'off') {
      if (replaced.has(backendName)) unregisterBlasKernels(backendName); // registered before it was set
      status = inactive(`disabled by ${DISABLE_ENV}=off`);
      return status;
    }
    if (!SUPPORTED_BACKENDS.has(backendName)) {
      return { ...inactive(`no OpenBLAS kernels for backend '${backendName}' (only wasm and cpu)`) };
    }
    const { addon, reason } = loadAddon();
    if (!addon) {
      status = inactive(reason ?? 'addon unavailable');
      return status;
    }
    if (!threadInfo) {
      threadInfo = resolveThreads();
      addon.setThreads(threadInfo.threads);
    }
    if (!replaced.has(backendName)) {
      const saved = new Map<string, KernelConfig | undefined>();
      for (const [name, impl] of IMPLS) {
        const stock = tf.getKernel(name, backendName);
        if (stock) tf.unregisterKernel(name, backendName);
        tf.registerKernel({ kernelName: name, backendName, kernelFunc: makeKernel(name, impl, backendName, addon, stock) });
        saved.set(name, stock);
      }
      for (const [name, backend, make] of RAW) {
        if (backend !== backendName) continue;
        const stock = tf.getKernel(name, backendName);
        if (!stock) continue;
        tf.unregisterKernel(name, backendName);
        tf.registerKernel({ kernelName: name, backendName, kernelFunc: make(stock) });
        saved.set(name, stock);
      }
      replaced.set(backendName, saved);
    }
    status = currentStatus(addon);
    return status;
  } catch (e) {
    status = inactive(`registration failed: ${(e as Error).message}`);
    return status;
  }
}

/** Puts the stock kernels back on `backendName` (for benchmarks and tests). Never throws. */
export function unregisterBlasKernels(backendName: string): BlasStatus {
  const saved = replaced.get(backendName);
  if (saved) {
    for (const [name, stock] of saved) {
      try {
        tf.unregisterKernel(name, backendName);
        if (stock) tf.registerKernel(stock);
      } catch {
        // leave whatever is registered
      }
    }
    replaced.delete(backendName);
  }
  const { addon } = loadAddon();
  status = addon && replaced.size > 0 ? currentStatus(addon) : inactive(`unregistered from ${backendName}`);
  return status;
}

/**
 * Swap the aliasing wasm Identity for the stock copying one (false) and back (true), leaving the
 * other kernels alone; for benchmarks that compare with the stock behaviour. Returns whether the
 * aliasing kernel is now registered.
 */
export function setIdentityAliasing(on: boolean): boolean {
  const saved = replaced.get('wasm');
  const stock = saved?.get('Identity');
  if (!saved || !stock) return false;
  tf.unregisterKernel('Identity', 'wasm');
  if (on) tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: RAW[0][2](stock) });
  else tf.registerKernel(stock);
  return on;
}

/** The status of the last registration. */
export function blasStatus(): BlasStatus {
  return status;
}

/**
 * Sets OpenBLAS' (and our loops') thread count for this process, e.g. 1 in each of several
 * training workers running side by side. Returns the count in effect, or null without the addon.
 */
export function setBlasThreads(n: number): number | null {
  const { addon } = loadAddon();
  if (!addon) return null;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setBlasThreads: expected a positive integer, got ${n}`);
  addon.setThreads(n);
  threadInfo = { threads: addon.getThreads(), source: 'setBlasThreads', warnings: [] };
  if (status.active) status = currentStatus(addon);
  return addon.getThreads();
}

/** The raw addon (null when not built), for benchmarks and tests of the kernels themselves. */
export function blasAddon(): BlasAddon | null {
  return loadAddon().addon;
}

export { resolveThreads } from './threads.js';
export { loadAddonFrom, type AddonLoad, type BlasAddon } from './addon.js';
export { hostView, hostTensor } from './host.js';

/**
 * The addon when hand-written fused host ops should run: our kernels are registered on the current
 * backend (wasm or cpu) and METAD2A_FUSED is not 'off'. Null otherwise: callers then use their
 * tfjs compositions (also the reference the fused ops are tested against).
 */
export function fusedAddon(): BlasAddon | null {
  if ((process.env.METAD2A_FUSED ?? '').toLowerCase() === 'off') return null;
  const name = tf.getBackend();
  if (!replaced.has(name)) return null;
  return loadAddon().addon;
}
