// Host access to tensor data for hand-written fused ops (forward/backward passes done in JS with
// the addon's gemm instead of hundreds of small tfjs kernels).
import * as tf from '@tensorflow/tfjs';
import { storeFor } from './store.js';

/**
 * The float32 data of `t` without a copy where the backend allows it (wasm: a view of the wasm
 * heap, valid until the next tensor allocation; cpu: the backend's own array), else a copy.
 * Treat it as read-only.
 */
export function hostView(t: tf.Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`kernels-blas: hostView needs float32 data, got ${t.dtype}`);
  const name = tf.getBackend();
  if (name === 'wasm' || name === 'cpu') {
    const v = storeFor(name, tf.backend()).view(t as unknown as tf.TensorInfo);
    if (v instanceof Float32Array) return v;
  }
  return t.dataSync() as Float32Array;
}

