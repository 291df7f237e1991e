import zlib from 'node:zlib';
import { InputError } from '@metad2a/core';

/** One member of a zip archive, located through the central directory. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

/**
 * A minimal zip reader (central directory, stored and deflate members, zip64 sizes/offsets) for
 * PyTorch `.pt` files. Every structural problem is reported as an InputError naming the file, so a
 * truncated or damaged checkpoint fails with a readable message instead of a RangeError somewhere.
 */
export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();

  constructor(
    private readonly buf: Buffer,
    readonly file: string,
  ) {
    this.readCentralDirectory();
  }

  private fail(problem: string, hint?: string): never {
    throw new InputError({ file: this.file }, problem, hint);
  }

  private readCentralDirectory(): void {
    const b = this.buf;
    if (b.length < 22) this.fail(`not a zip archive (only ${b.length} bytes)`, 'the file is truncated or not a PyTorch zip checkpoint');
    // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
    let eocd = -1;
    for (let i = b.length - 22; i >= Math.max(0, b.length - 22 - 65535); i--) {
      if (b.readUInt32LE(i) === SIG_EOCD) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      const hint = b.length >= 4 && b.readUInt32LE(0) === SIG_LOCAL ? 'it starts like a zip, so it is probably truncated' : 'legacy (non-zip) torch.save files are not supported; re-save with torch >= 1.6';
      this.fail('not a zip archive: no end-of-central-directory record', hint);
    }
    let count = b.readUInt16LE(eocd + 10);
    let cdSize = b.readUInt32LE(eocd + 12);
    let cdOffset = b.readUInt32LE(eocd + 16);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || b.readUInt32LE(loc) !== SIG_EOCD64_LOCATOR) this.fail('zip64 archive without a zip64 locator');
      const rec = Number(b.readBigUInt64LE(loc + 8));
      if (rec + 56 > b.length || b.readUInt32LE(rec) !== SIG_EOCD64) this.fail('zip64 end-of-central-directory record is missing or damaged');
      count = Number(b.readBigUInt64LE(rec + 32));
      cdSize = Number(b.readBigUInt64LE(rec + 40));
      cdOffset = Number(b.readBigUInt64LE(rec + 48));
    }
    if (cdOffset + cdSize > b.length) this.fail(`central directory (${cdSize} bytes at ${cdOffset}) lies beyond the end of the file (${b.length} bytes)`, 'the file is truncated');
    let p = cdOffset;
    for (let i = 0; i < count; i++) {
      if (p + 46 > b.length || b.readUInt32LE(p) !== SIG_CENTRAL) this.fail(`central directory entry ${i} of ${count} is damaged`);
      const method = b.readUInt16LE(p + 10);
      const crc32 = b.readUInt32LE(p + 16);
      let compressedSize = b.readUInt32LE(p + 20);
      let size = b.readUInt32LE(p + 24);
      const nameLen = b.readUInt16LE(p + 28);
      const extraLen = b.readUInt16LE(p + 30);
      const commentLen = b.readUInt16LE(p + 32);
      let localHeaderOffset = b.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen > b.length) this.fail(`central directory entry ${i} runs past the end of the file`);
      const name = b.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information: only the fields that are 0xffffffff in the fixed part are present, in this order.
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = b.readUInt16LE(e);
        const len = b.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (size === 0xffffffff) (size = Number(b.readBigUInt64LE(q))), (q += 8);
          if (compressedSize === 0xffffffff) (compressedSize = Number(b.readBigUInt64LE(q))), (q += 8);
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(b.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The member's bytes, decompressed and checked against its CRC-32. */
  read(name: string): Buffer {
    const ent = this.entries.get(name);
    if (!ent) this.fail(`member '${name}' is missing from the archive`);
    const b = this.buf;
    const h = ent.localHeaderOffset;
    if (h + 30 > b.length || b.readUInt32LE(h) !== SIG_LOCAL) this.fail(`member '${name}': local header at byte ${h} is missing or damaged`, 'the file is truncated or corrupted');
    const start = h + 30 + b.readUInt16LE(h + 26) + b.readUInt16LE(h + 28);
    const end = start + ent.compressedSize;
    if (end > b.length) this.fail(`member '${name}': data (${ent.compressedSize} bytes at ${start}) runs past the end of the file (${b.length} bytes)`, 'the file is truncated');
    const raw = b.subarray(start, end);
    let data: Buffer;
    if (ent.method === 0) data = raw;
    else if (ent.method === 8) {
      try {
        data = zlib.inflateRawSync(raw);
      } catch (err) {
        this.fail(`member '${name}': deflate data is corrupted (${(err as Error).message})`);
      }
    } else this.fail(`member '${name}': unsupported compression method ${ent.method}`, 'only stored (0) and deflate (8) are supported');
    if (data.length !== ent.size) this.fail(`member '${name}': expected ${ent.size} bytes after decompression, got ${data.length}`);
    const crc = zlib.crc32(data) >>> 0;
    if (crc !== ent.crc32) this.fail(`member '${name}': CRC-32 mismatch (stored ${hex(ent.crc32)}, computed ${hex(crc)})`, 'the file is corrupted');
    return data;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
