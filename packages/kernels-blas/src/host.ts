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


/**
 * A new float32 tensor of the current backend whose contents are unspecified until written through
 * hostView (for host-side ops: no JS array and no copy into the backend). Allocate every output of
 * an op before taking any view: on wasm an allocation may move the heap.
 */
export function hostTensor(shape: number[]): tf.Tensor {
  const name = tf.getBackend();
  if (name !== 'wasm' && name !== 'cpu') return tf.zeros(shape);
  const info = storeFor(name, tf.backend()).out(shape, 'float32');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (tf.engine() as any).makeTensorFromTensorInfo(info) as tf.Tensor;
}
