#!/usr/bin/env node
// The project's test command: build, type-check and test every project through Nx (cached), then
// print the summed closing line "N passed, N failed". Old reports are removed first so a project whose
// tests did not run is counted as a failure instead of reporting stale numbers.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
for (const group of ['packages', 'apps']) {
  for (const name of fs.readdirSync(path.join(root, group))) fs.rmSync(path.join(root, group, name, 'test-results.json'), { force: true });
}
const extra = process.argv.slice(2);
const nx = spawnSync('npx', ['nx', 'run-many', '-t', 'build', 'typecheck', 'test', '--outputStyle=static', ...extra], { cwd: root, stdio: 'inherit' });
const summary = spawnSync(process.execPath, [path.join(root, 'tools/scripts/test-summary.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(nx.status !== 0 ? nx.status ?? 1 : summary.status ?? 1);
