import { defineConfig } from 'vitest/config';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Tests resolve workspace packages to their TypeScript sources, so a test run never depends on
// (or races with) another package's build output.
const root = path.dirname(fileURLToPath(import.meta.url));
const alias: Record<string, string> = {};
for (const name of fs.readdirSync(path.join(root, 'packages'))) {
  const src = path.join(root, 'packages', name, 'src', 'index.ts');
  if (fs.existsSync(src)) alias[`@metad2a/${name}`] = src;
}

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    passWithNoTests: true,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results.json' },
  },
});
