import { defineConfig } from 'tsup';

// processor.ts is its own entry: BullMQ loads it by file path inside a worker thread.
export default defineConfig({
  entry: ['src/index.ts', 'src/processor.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
});
