import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Walk up from `start` to the folder holding nx.json (the monorepo root); null when there is none. */
export function findRepoRoot(start: string): string | null {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, 'nx.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/** The monorepo root above a module (its import.meta.url), else above the working directory; null outside one. */
export function repoRootOf(moduleUrl: string): string | null {
  return findRepoRoot(path.dirname(fileURLToPath(moduleUrl))) ?? findRepoRoot(process.cwd());
}
