import { createRequire } from 'node:module';

// Read at run time: from dist/index.js and from src/ alike, ../package.json is this app's.
const require = createRequire(import.meta.url);

/** Version of a package as installed (null when it cannot be resolved). */
export function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

export const VERSION: string = (require('../package.json') as { version: string }).version;
