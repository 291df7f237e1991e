import fs from 'node:fs';
import path from 'node:path';

/**
 * Write a file atomically: the chunks go to a temporary file in the same directory, which is fsync'd
 * and renamed over the target, so readers see the old file or the new one, never a torn one. On any
 * failure the temporary file is removed and the target is untouched.
 */
export function writeChunksAtomic(file: string, chunks: Iterable<Uint8Array>): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      for (const c of chunks) fs.writeSync(fd, c);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** writeChunksAtomic of one string or buffer. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  writeChunksAtomic(file, [typeof data === 'string' ? Buffer.from(data) : data]);
}
