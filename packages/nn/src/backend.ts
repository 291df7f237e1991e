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

function parseRequested(value: string | undefined): BackendName | 'auto' {
  if (!value || value === 'auto') return 'auto';
  if ((BACKEND_ORDER as readonly string[]).includes(value)) return value as BackendName;
  throw new ConfigError(BACKEND_ENV, `unknown backend '${value}'`, `use one of auto, ${BACKEND_ORDER.join(', ')}`);
}

async function tryNative(pkg: string): Promise<void> {
  // A non-literal specifier keeps bundlers and tsc from resolving these optional packages.
  const spec = pkg;
  await import(spec);
}

async function activate(name: BackendName): Promise<{ tfName: string; blas: BlasStatus | null }> {
  switch (name) {
    case 'tensorflow-gpu':
      await tryNative('@tensorflow/tfjs-node-gpu');
      break;
    case 'tensorflow':
      await tryNative('@tensorflow/tfjs-node');
      break;
    default:
      break;
  }
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
export function initBackend(options: { force?: BackendName | 'auto'; quiet?: boolean } = {}): Promise<BackendInfo> {
  const requested = options.force ?? parseRequested(process.env[BACKEND_ENV]);
  if (current && (requested === 'auto' || requested === current.name)) return Promise.resolve(current);
  if (pending && !current) return pending;
  pending = (async () => {
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
        if (requested !== 'auto') throw new ConfigError(BACKEND_ENV, `backend '${name}' could not start: ${reason}`);
        skipped.push({ name, reason });
      }
    }
    throw new Error(`no TensorFlow.js backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
  })();
  pending.finally(() => {
    pending = null;
  });
  return pending;
}

/** The backend chosen by initBackend, or null before it ran. */
export function backendInfo(): BackendInfo | null {
  return current;
}
