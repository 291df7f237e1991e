// Uniform access to tensor memory on the wasm and cpu backends. On wasm, views are windows into the
// wasm heap; any allocation may grow the heap and detach earlier views, so kernels allocate their
// outputs first and take views afterwards.
import type { DataType, TensorInfo } from '@tensorflow/tfjs';

export type Typed = Float32Array | Int32Array | Uint8Array;

export interface Store {
  /** A view of a tensor's data (no copy). */
  view(t: TensorInfo): Typed;
  /** A new output tensor; its contents are unspecified until written. */
  out(shape: number[], dtype: DataType): TensorInfo;
}

interface WasmBackendLike {
  typedArrayFromHeap(t: TensorInfo): Typed;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: DataType, values?: unknown): TensorInfo;
}

function size(shape: readonly number[]): number {
  let s = 1;
  for (const d of shape) s *= d;
  return s;
}

export function wasmStore(backend: unknown): Store {
  const b = backend as WasmBackendLike;
  return {
    view: (t) => b.typedArrayFromHeap(t),
    out: (shape, dtype) => b.makeOutput(shape, dtype),
  };
}

export function cpuStore(backend: unknown): Store {
  const b = backend as CpuBackendLike;
  return {
    view: (t) => {
      const v = b.data.get(t.dataId).values;
      if (!(v instanceof Float32Array || v instanceof Int32Array || v instanceof Uint8Array)) {
        throw new Error(`kernels-blas: tensor data of dtype ${t.dtype} is not a typed array`);
      }
      return v;
    },
    out: (shape, dtype) => {
      const n = size(shape);
      const values = dtype === 'int32' ? new Int32Array(n) : dtype === 'bool' ? new Uint8Array(n) : new Float32Array(n);
      return b.makeTensorInfo(shape, dtype, values);
    },
  };
}

export function storeFor(backendName: string, backend: unknown): Store {
  return backendName === 'wasm' ? wasmStore(backend) : cpuStore(backend);
}

export { size };
