import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ConfigError } from '@metad2a/core';
import { registerBlasKernels, type BlasStatus } from '@metad2a/kernels-blas';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  /** What was asked for ('auto' or a forced name). */
  requested: BackendName | 'auto';
  /** The backend in use. */
  name: BackendName;
  /** tfjs' own name for it ('tensorflow', 'wasm', 'cpu'). */
  tfName: string;
  /** Why each better backend was skipped. */
  skipped: Array<{ name: BackendName; reason: string }>;
  blas: BlasStatus | null;
}

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

/** The environment variable that forces a backend: METAD2A_BACKEND=tensorflow-gpu|tensorflow|wasm|cpu. */
export const BACKEND_ENV = 'METAD2A_BACKEND';

/**
 * Validate a backend name from the environment or a command-line flag (`--backend`); `source`
 * names where it came from in the ConfigError. Empty means auto.
 */
export function parseBackendName(value: string | undefined, source: string = BACKEND_ENV): BackendName | 'auto' {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendName;
  throw new ConfigError(source, `unknown backend '${value}'`, `use one of auto, ${BACKEND_ORDER.join(', ')}`);
}

const NATIVE_PACKAGES: Partial<Record<BackendName, string>> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

async function tryNative(pkg: string): Promise<void> {
  // A non-literal specifier keeps bundlers and tsc from resolving these optional packages.
  const spec = pkg;
  try {
    await import(spec);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const first = String(err.message).split('\n')[0];
    if (err.code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (package|module)/.test(first)) {
      throw new Error(`${pkg} is not installed (an optional dependency: its install downloads libtensorflow and is dropped when that fails)`);
    }
    throw new Error(`${pkg} is installed but failed to load: ${first}`);
  }
}

async function activate(name: BackendName): Promise<{ tfName: string; blas: BlasStatus | null }> {
  const pkg = NATIVE_PACKAGES[name];
  if (pkg) await tryNative(pkg);
  const tfName = name === 'tensorflow-gpu' || name === 'tensorflow' ? 'tensorflow' : name;
  const ok = await tf.setBackend(tfName);
  if (!ok || tf.getBackend() !== tfName) throw new Error(`tf.setBackend('${tfName}') failed`);
  await tf.ready();
  const blas = tfName === 'wasm' || tfName === 'cpu' ? registerBlasKernels(tfName) : null;
  return { tfName, blas };
}

/**
 * Choose and start the TensorFlow.js backend once per process: tfjs-node-gpu, then tfjs-node,
 * then wasm (with OpenBLAS kernels where available), then cpu. `force` (or METAD2A_BACKEND)
 * selects one and fails loudly if it cannot start. Logs the choice once to stderr unless quiet.
 */
export function initBackend(options: { force?: BackendName | 'auto' | string; quiet?: boolean } = {}): Promise<BackendInfo> {
  let requested: BackendName | 'auto';
  try {
    requested = options.force !== undefined ? parseBackendName(options.force, 'backend') : parseBackendName(process.env[BACKEND_ENV]);
  } catch (e) {
    return Promise.reject(e);
  }
  if (current && (requested === 'auto' || requested === current.name)) return Promise.resolve(current);
  if (pending) return pending;
  const run = (async () => {
    const skipped: BackendInfo['skipped'] = [];
    const candidates = requested === 'auto' ? BACKEND_ORDER : [requested];
    for (const name of candidates) {
      try {
        const { tfName, blas } = await activate(name);
        current = { requested, name, tfName, skipped, blas };
        if (!options.quiet && !process.env.METAD2A_QUIET) {
          const blasText = blas ? (blas.active ? `, OpenBLAS kernels on (${blas.threads ?? '?'} threads)` : `, OpenBLAS kernels off: ${blas.reason}`) : '';
          process.stderr.write(`[metad2a] tfjs backend: ${name}${blasText}\n`);
        }
        return current;
      } catch (e) {
        const reason = (e as Error).message.split('\n')[0];
        if (requested !== 'auto') {
          const other = current ? `still using '${current.name}'` : `auto would pick the first that starts of ${BACKEND_ORDER.join(' > ')}`;
          throw new ConfigError(options.force !== undefined ? 'backend' : BACKEND_ENV, `backend '${name}' could not start: ${reason}`, other);
        }
        skipped.push({ name, reason });
      }
    }
    throw new Error(`no TensorFlow.js backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
  })();
  pending = run;
  // Clear the in-flight marker either way; the catch keeps this side chain from being an unhandled rejection.
  run.then(
    () => (pending = null),
    () => (pending = null),
  );
  return run;
}

/** The backend chosen by initBackend, or null before it ran. */
export function backendInfo(): BackendInfo | null {
  return current;
}
