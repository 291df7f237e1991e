/**
 * A pool of reusable host buffers for per-call temporaries: allocating tens of MB of typed arrays per
 * call costs more in zeroing and GC than the arithmetic. Each module keeps its own pool, so keys of
 * one never alias another's; within a pool, a key is used by one phase at a time. Contents are unspecified.
 */
export function scratchPool(): (key: string, n: number) => Float32Array {
  const bufs = new Map<string, Float32Array>();
  return (key, n) => {
    let b = bufs.get(key);
    if (!b || b.length < n) {
      b = new Float32Array(n);
      bufs.set(key, b);
    }
    return b.subarray(0, n);
  };
}
