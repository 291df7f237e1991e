#!/usr/bin/env node
// Sums the vitest JSON reports of every project (written by each project's vitest.config.ts and
// restored by the Nx cache) into the one closing line CI reads: "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const group of ['packages', 'apps', 'tools']) {
  const dir = path.join(root, group);
  if (!fs.existsSync(dir)) continue;
  for (const name of fs.readdirSync(dir).sort()) {
    const pj = path.join(dir, name, 'package.json');
    if (!fs.existsSync(pj)) continue;
    if (!JSON.parse(fs.readFileSync(pj, 'utf8')).scripts?.test) continue;
    const report = path.join(dir, name, 'test-results.json');
    if (!fs.existsSync(report)) {
      missing.push(`${group}/${name}`);
      continue;
    }
    const r = JSON.parse(fs.readFileSync(report, 'utf8'));
    const p = r.numPassedTests ?? 0;
    const f = (r.numFailedTests ?? 0) + (r.numFailedTestSuites ?? 0) - (r.numFailedTests ? 0 : 0);
    const s = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    console.log(`${group}/${name}: ${p} passed, ${r.numFailedTests ?? 0} failed, ${s} skipped`);
    passed += p;
    failed += r.numFailedTests ?? 0;
    failed += f - (r.numFailedTests ?? 0);
    skipped += s;
  }
}
if (missing.length) {
  console.log(`no test report from: ${missing.join(', ')}`);
  failed += missing.length;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
