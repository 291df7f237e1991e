import fs from 'node:fs';
import { InputError } from '@metad2a/core';

export type NpyDtype = 'f4' | 'f8' | 'i1' | 'u1' | 'i2' | 'u2' | 'i4' | 'u4' | 'i8' | 'u8';

export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the first element. */
  dataOffset: number;
  itemSize: number;
}

const SIZES: Record<NpyDtype, number> = { f4: 4, f8: 8, i1: 1, u1: 1, i2: 2, u2: 2, i4: 4, u4: 4, i8: 8, u8: 8 };

/** Parse the header of a .npy file (format versions 1-3, little-endian or single-byte types, C order). */
export function readNpyHeader(file: string, fd?: number): NpyHeader {
  const own = fd === undefined;
  const f = fd ?? fs.openSync(file, 'r');
  try {
    const pre = Buffer.alloc(12);
    const got = fs.readSync(f, pre, 0, 12, 0);
    if (got < 10 || pre[0] !== 0x93 || pre.toString('latin1', 1, 6) !== 'NUMPY') throw new InputError({ file }, 'not a .npy file (missing \\x93NUMPY magic)');
    const major = pre[6];
    const headerLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
    const start = major === 1 ? 10 : 12;
    const hb = Buffer.alloc(headerLen);
    fs.readSync(f, hb, 0, headerLen, start);
    const header = hb.toString(major === 3 ? 'utf8' : 'latin1');
    const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
    const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
    const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
    if (!descr || !fortran || shapeText === undefined) throw new InputError({ file, field: 'header' }, `unreadable .npy header: ${header.trim()}`);
    if (fortran === 'True') throw new InputError({ file, field: 'fortran_order' }, 'Fortran-ordered arrays are not supported', 'save with np.ascontiguousarray(x)');
    const m = /^([<|=])([fiu])(\d)$/.exec(descr);
    const dtype = m ? ((m[2] + m[3]) as NpyDtype) : null;
    if (!m || !dtype || !(dtype in SIZES) || (m[1] === '=' && SIZES[dtype] > 1)) {
      throw new InputError({ file, field: 'descr' }, `unsupported dtype '${descr}'`, 'use little-endian float32/float64 features and integer labels');
    }
    const shape = shapeText
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map(Number);
    return { dtype, shape, dataOffset: start + headerLen, itemSize: SIZES[dtype] };
  } finally {
    if (own) fs.closeSync(f);
  }
}

/** Convert raw little-endian bytes of an npy dtype to numbers. */
export function npyToNumbers(bytes: Buffer, dtype: NpyDtype): Float64Array {
  const size = SIZES[dtype];
  const n = Math.floor(bytes.length / size);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case 'f4': out[i] = bytes.readFloatLE(o); break;
      case 'f8': out[i] = bytes.readDoubleLE(o); break;
      case 'i1': out[i] = bytes.readInt8(o); break;
      case 'u1': out[i] = bytes[o]; break;
      case 'i2': out[i] = bytes.readInt16LE(o); break;
      case 'u2': out[i] = bytes.readUInt16LE(o); break;
      case 'i4': out[i] = bytes.readInt32LE(o); break;
      case 'u4': out[i] = bytes.readUInt32LE(o); break;
      case 'i8': out[i] = Number(bytes.readBigInt64LE(o)); break;
      case 'u8': out[i] = Number(bytes.readBigUInt64LE(o)); break;
    }
  }
  return out;
}

/** Write a float32 2-D .npy (version 1), e.g. to hand features to numpy users. */
export function encodeNpyF32(data: Float32Array, rows: number, cols: number): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre[0] = 0x93;
  pre.write('NUMPY', 1, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), body]);
}
