// Runs when `node-gyp rebuild` failed during npm install/ci. It never fails the install: it works
// out the most likely reason (missing compiler, python, OpenBLAS), records it in
// build/no-addon.json for blasStatus() to report at run time, and prints how to fix it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `--out DIR` writes the note elsewhere (tests); by default it goes to <package>/build.
const outArg = process.argv.indexOf('--out');
const outDir = outArg > 0 && process.argv[outArg + 1] ? path.resolve(process.argv[outArg + 1]) : path.join(root, 'build');

function onPath(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function hasOpenblas() {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib', '/opt/homebrew/opt/openblas/lib', '/usr/local/opt/openblas/lib'];
  for (const d of dirs) {
    for (const f of ['libopenblas.so', 'libopenblas.dylib', 'libopenblas.a']) {
      if (fs.existsSync(path.join(d, f))) return true;
    }
  }
  try {
    return /libopenblas\.so\b/.test(execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return false;
  }
}

let reason;
if (!onPath('cc') && !onPath('gcc') && !onPath('clang')) reason = 'no C compiler found (install build-essential)';
else if (!onPath('make')) reason = 'make not found (install build-essential)';
else if (!onPath('python3') && !onPath('python')) reason = 'python3 not found (node-gyp needs it)';
else if (!hasOpenblas()) reason = 'OpenBLAS not found (install libopenblas-dev)';
else reason = 'node-gyp could not build the addon (see the install log above)';

try {
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = path.join(outDir, `no-addon.json.${process.pid}`);
  fs.writeFileSync(tmp, JSON.stringify({ reason, at: new Date().toISOString() }) + '\n');
  fs.renameSync(tmp, path.join(outDir, 'no-addon.json'));
} catch {
  // best effort: the run-time loader reports a missing addon anyway
}
process.stderr.write(
  `@metad2a/kernels-blas: OpenBLAS kernels inactive: ${reason}. TensorFlow.js will use its stock kernels.\n` +
    `  Fix, then rebuild with: npm rebuild @metad2a/kernels-blas\n`,
);
