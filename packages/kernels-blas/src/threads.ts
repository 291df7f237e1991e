import os from 'node:os';

/** Where the BLAS thread count came from. */
export type ThreadSource = 'METAD2A_BLAS_THREADS' | 'OPENBLAS_NUM_THREADS' | 'availableParallelism' | 'setBlasThreads';

export const THREADS_ENV = 'METAD2A_BLAS_THREADS';

function parsePositive(value: string | undefined): number | null {
  if (value == null || value.trim() === '') return null;
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 ? n : null;
}

/**
 * Thread count for OpenBLAS and our own loops: METAD2A_BLAS_THREADS, else OPENBLAS_NUM_THREADS,
 * else the machine's available parallelism. An unusable value is skipped with a warning.
 */
export function resolveThreads(env: NodeJS.ProcessEnv = process.env): { threads: number; source: ThreadSource; warnings: string[] } {
  const warnings: string[] = [];
  for (const name of [THREADS_ENV, 'OPENBLAS_NUM_THREADS'] as const) {
    const raw = env[name];
    if (raw == null || raw.trim() === '') continue;
    const n = parsePositive(raw);
    if (n != null) return { threads: Math.min(n, 64), source: name, warnings };
    warnings.push(`${name}='${raw}' is not a positive integer; ignored`);
  }
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return { threads: Math.max(1, Math.min(n, 64)), source: 'availableParallelism', warnings };
}
