#!/usr/bin/env node
// Sums the vitest JSON reports of every project (written by vitest.shared.ts and restored by the
// Nx cache) into the one closing line CI reads: "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let passed = 0;
let failed = 0;
let skipped = 0;
for (const group of ['packages', 'apps', 'tools']) {
  const dir = path.join(root, group);
  if (!fs.existsSync(dir)) continue;
  for (const name of fs.readdirSync(dir).sort()) {
    const pj = path.join(dir, name, 'package.json');
    if (!fs.existsSync(pj) || !JSON.parse(fs.readFileSync(pj, 'utf8')).scripts?.test) continue;
    const report = path.join(dir, name, 'test-results.json');
    if (!fs.existsSync(report)) {
      console.log(`${group}/${name}: no test report (counted as one failure)`);
      failed += 1;
      continue;
    }
    const r = JSON.parse(fs.readFileSync(report, 'utf8'));
    // A suite that fails to load has no failed tests but must still count as a failure.
    const f = Math.max(r.numFailedTests ?? 0, r.numFailedTestSuites ?? 0);
    const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`${group}/${name}: ${r.numPassedTests} passed, ${f} failed, ${s} skipped`);
    passed += r.numPassedTests ?? 0;
    failed += f;
    skipped += s;
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
