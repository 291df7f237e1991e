import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '@metad2a/core';
import { GRUCell, PyObject, ZipReader, importTorchStateDict, initBackend, pyAttributes, readF32Bundle, readTorchFile, selectPrefix, unpickle } from '../src/index.js';
import { ORIGINAL_CKPT, PARITY_MANIFEST, TINY_PT } from './helpers.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nn-torch-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('importTorchStateDict on the original MetaD2A generator checkpoint', () => {
  it('yields all 304,200 parameters with PyTorch names, shapes and exactly the fixture values', () => {
    const sd = importTorchStateDict(ORIGINAL_CKPT);
    const ref = readF32Bundle(PARITY_MANIFEST).group('generator_state');
    expect(sd.path).toEqual([]);
    expect(sd.nonTensors).toEqual([]);
    expect([...sd.keys()]).toEqual([...ref.keys()]); // same names in the same (state-dict) order
    let total = 0;
    let mismatches = 0;
    for (const [name, want] of ref) {
      const got = sd.get(name)!;
      expect(got.shape, name).toEqual(want.shape);
      expect(got.dtype).toBe('float32');
      total += got.data.length;
      for (let i = 0; i < want.data.length; i++) if (!Object.is(got.data[i], want.data[i])) mismatches++;
    }
    expect(total).toBe(304_200);
    expect(mismatches).toBe(0);
    expect(sd.get('grue_forward.weight_ih')!.shape).toEqual([168, 7]);
    expect(sd.get('intra_setpool.dec.0.S')!.shape).toEqual([1, 1, 56]);
  });

  it('keeps the OrderedDict _metadata that torch.save attaches through BUILD', () => {
    const { root, version, prefix } = readTorchFile(ORIGINAL_CKPT);
    expect(prefix).toBe('archive');
    expect(version).toBe(3);
    const attrs = pyAttributes.get(root as object) as Map<string, unknown>;
    expect(attrs).toBeInstanceOf(Map);
    expect((attrs.get('_metadata') as Map<string, unknown>).has('grue_forward')).toBe(true);
  });
});

describe('importTorchStateDict on a hand-built torch.save-shaped file (test/fixtures/make_tiny_pt.py)', () => {
  it('finds the state dict under "model", gathers strided views and converts dtypes', () => {
    const sd = importTorchStateDict(TINY_PT);
    expect(sd.path).toEqual(['model']);
    const v = (n: string) => Array.from(sd.get(n)!.data);
    // storage 0 is float32 arange(12)
    expect(v('lin.weight')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(sd.get('lin.weight')!.shape).toEqual([3, 4]);
    expect(v('lin.weight_t')).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]); // transposed: stride [1, 4]
    expect(v('lin.bias')).toEqual([2, 4, 6]); // offset 2, stride 2
    expect(v('expanded')).toEqual([0, 1, 2, 0, 1, 2]); // stride 0 (expand)
    expect(sd.get('bn.num_batches_tracked')).toEqual({ shape: [], data: Float32Array.from([7]), dtype: 'int64' });
    expect(sd.get('half')!.dtype).toBe('float16');
    expect(v('half')).toEqual([1, -2.5, Math.fround(0.0999755859375)]);
    expect(sd.get('sub.w')).toEqual({ shape: [2], data: Float32Array.from([1.5, -0.25]), dtype: 'float64' }); // nested dict, deflated member
    expect(v('param')).toEqual([8, 9, 10, 11]); // nn.Parameter wrapper, offset 8
    expect(sd.nonTensors.map((e) => e.name)).toEqual(['epoch', 'optimizer']);
    expect(sd.nonTensors[0].value).toBe(3);
    const opt = sd.nonTensors[1].value as Map<string, unknown>;
    expect(opt.get('lr')).toBe(0.001);
    expect(opt.get('names')).toEqual(['a', 'b']);
  });

  it('honours an explicit key and names the available keys when it is wrong', () => {
    expect(importTorchStateDict(TINY_PT, { key: 'model.sub' }).get('w')!.data[0]).toBe(1.5);
    expect(() => importTorchStateDict(TINY_PT, { key: 'weights' })).toThrow(/tiny\.pt, field 'weights': no such entry in the checkpoint \(available: model, epoch, optimizer\)/);
  });
});

/** Copy the original checkpoint into tmp, damaged by `edit`. */
function damaged(name: string, edit: (b: Buffer) => Buffer): string {
  const out = path.join(tmp, name);
  fs.writeFileSync(out, edit(Buffer.from(fs.readFileSync(ORIGINAL_CKPT))));
  return out;
}

function errorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an error');
}

describe('damaged .pt files give clear errors naming the file and the problem', () => {
  it('truncated to half: no end-of-central-directory, probably truncated', () => {
    const f = damaged('half.pt', (b) => b.subarray(0, b.length >> 1));
    const e = errorOf(() => importTorchStateDict(f));
    expect(e.message).toContain(f);
    expect(e.message).toMatch(/not a zip archive: no end-of-central-directory record \(it starts like a zip, so it is probably truncated\)/);
  });

  it('a few bytes, or not a zip at all', () => {
    expect(errorOf(() => importTorchStateDict(damaged('tiny.pt', (b) => b.subarray(0, 10)))).message).toMatch(/tiny\.pt: not a zip archive \(only 10 bytes\)/);
    expect(errorOf(() => importTorchStateDict(damaged('text.pt', () => Buffer.from('hello, this is not a checkpoint\n'.repeat(4))))).message).toMatch(/legacy \(non-zip\) torch\.save files are not supported/);
    expect(errorOf(() => importTorchStateDict(path.join(tmp, 'absent.pt'))).message).toMatch(/absent\.pt: cannot read PyTorch checkpoint: ENOENT/);
  });

  it('tail cut off (central directory kept, storage data cut): names the member', () => {
    // Cut the middle of the file out but keep the central directory: a storage's data now runs past the end.
    const f = damaged('cut.pt', (b) => {
      const cd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), b.length - 1);
      const firstCd = b.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      expect(cd).toBeGreaterThan(0);
      return Buffer.concat([b.subarray(0, 30_000), b.subarray(firstCd)]);
    });
    const e = errorOf(() => importTorchStateDict(f));
    expect(e.message).toContain(f);
    expect(e.message).toMatch(/central directory .* lies beyond the end of the file|runs past the end of the file|local header .* is missing or damaged/);
  });

  it('a flipped byte inside the pickle or a storage fails the CRC check of that member', () => {
    const orig = fs.readFileSync(ORIGINAL_CKPT);
    const pklAt = orig.indexOf(Buffer.from('grue_forward.weight_hh'));
    const f1 = damaged('flip-pkl.pt', (b) => ((b[pklAt] ^= 0x20), b));
    expect(errorOf(() => importTorchStateDict(f1)).message).toMatch(/flip-pkl\.pt: member 'archive\/data\.pkl': CRC-32 mismatch .*\(the file is corrupted\)/);
    const f2 = damaged('flip-data.pt', (b) => ((b[600_000] ^= 0x01), b));
    expect(errorOf(() => importTorchStateDict(f2)).message).toMatch(/flip-data\.pt: member 'archive\/data\/\d+': CRC-32 mismatch/);
  });

  it('a storage member missing from the archive is reported with its key', () => {
    // Rename one storage in the central directory only: the pickle still references the old key.
    const f = damaged('missing.pt', (b) => {
      const cdStart = b.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
      const at = b.indexOf(Buffer.from('archive/data/9'), cdStart);
      b[at + 'archive/data/'.length] = 'x'.charCodeAt(0);
      return b;
    });
    const e = errorOf(() => importTorchStateDict(f));
    expect(e.message).toMatch(/missing\.pt, field 'archive\/data\/9\d*': storage '9\d*' referenced by archive\/data\.pkl is missing from the archive/);
  });
});

/** tiny.pt with bytes of one stored member replaced (same length) and its CRC-32 fixed, so the damage is semantic. */
function patchedTiny(name: string, member: string, from: number[] | string, to: number[] | string): string {
  const b = Buffer.from(fs.readFileSync(TINY_PT));
  const ent = new ZipReader(b, TINY_PT).entries.get(member)!;
  const start = ent.localHeaderOffset + 30 + b.readUInt16LE(ent.localHeaderOffset + 26) + b.readUInt16LE(ent.localHeaderOffset + 28);
  const data = b.subarray(start, start + ent.size);
  const at = data.indexOf(Buffer.from(from as never));
  expect(at).toBeGreaterThanOrEqual(0);
  Buffer.from(to as never).copy(data, at);
  const crc = zlib.crc32(data) >>> 0;
  b.writeUInt32LE(crc, ent.localHeaderOffset + 14);
  const cd = b.indexOf(Buffer.concat([Buffer.from([0x50, 0x4b, 0x01, 0x02])]), start);
  for (let p = cd; p >= 0; p = b.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), p + 4)) {
    if (b.toString('utf8', p + 46, p + 46 + b.readUInt16LE(p + 28)) === member) b.writeUInt32LE(crc, p + 16);
  }
  const out = path.join(tmp, name);
  fs.writeFileSync(out, b);
  return out;
}

describe('semantically damaged .pt files (valid zip, bad content)', () => {
  it('a tensor view larger than its storage names the tensor', () => {
    // lin.weight's size (3, 4) -> (3, 5): BINPERSID, K 0, K 3, K 4, TUPLE2
    const f = patchedTiny('view.pt', 'archive/data.pkl', [0x51, 0x4b, 0x00, 0x4b, 0x03, 0x4b, 0x04, 0x86], [0x51, 0x4b, 0x00, 0x4b, 0x03, 0x4b, 0x05, 0x86]);
    expect(() => importTorchStateDict(f)).toThrow(/view\.pt, field 'lin\.weight': tensor view \(offset 0, shape \[3,5\], stride \[4,1\]\) reads outside its storage '0' of 12 elements/);
  });

  it('a storage with fewer bytes than the pickle claims, and an unknown storage type', () => {
    // storage '0' claims 13 elements (K 12 -> K 13) but holds 48 bytes
    const f = patchedTiny('numel.pt', 'archive/data.pkl', [0x63, 0x70, 0x75, 0x71, 0x09, 0x4b, 0x0c], [0x63, 0x70, 0x75, 0x71, 0x09, 0x4b, 0x0d]);
    expect(() => importTorchStateDict(f)).toThrow(/numel\.pt, field 'archive\/data\/0': storage '0' has 48 bytes, expected 13 x 4 = 52/);
    const g = patchedTiny('type.pt', 'archive/data.pkl', 'FloatStorage', 'FloatStorag3');
    expect(() => importTorchStateDict(g)).toThrow(/type\.pt \(archive\/data\.pkl\): pickle opcode 0x51 at byte \d+: unsupported storage type torch\.FloatStorag3/);
  });

  it('loading an imported state into a module of another size names the parameter and the file', async () => {
    await initBackend({ quiet: true });
    const sd = importTorchStateDict(ORIGINAL_CKPT);
    const cell = new GRUCell(7, 64);
    expect(() => cell.loadStateDict(selectPrefix(sd, 'grue_forward.'), { source: ORIGINAL_CKPT })).toThrow(/parameter 'weight_ih' from .*generator_ckpt_400\.pt: expected shape \[192, 7\], got \[168, 7\]/);
    cell.dispose();
  });
});

describe('unpickle', () => {
  // pickle.dumps({'a': [1, 2.5, None, True, False, 'é', b'xy', (1, 2), 2**70, -3, -300000, 65535],
  //               'od': OrderedDict([('k', 1)]), 's': {4}}, protocol=p) from CPython 3
  const dumps: Record<number, string> = {
    0: '286470300a56610a70310a286c70320a49310a6146322e350a614e614930310a614930300a6156e90a70330a61635f636f646563730a656e636f64650a70340a285678790a70350a566c6174696e310a70360a7470370a5270380a612849310a49320a7470390a614c313138303539313632303731373431313330333432344c0a61492d330a61492d3330303030300a614936353533350a6173566f640a7031300a63636f6c6c656374696f6e730a4f726465726564446963740a7031310a2874527031320a566b0a7031330a49310a737356730a7031340a635f5f6275696c74696e5f5f0a7365740a7031350a28286c7031360a49340a61747031370a527031380a732e',
    2: '80027d71002858010000006171015d7102284b014740040000000000004e88895802000000c3a97103635f636f646563730a656e636f64650a710458020000007879710558060000006c6174696e3171068671075271084b014b028671098a090000000000000000404afdffffff4a206cfbff4dffff6558020000006f64710a63636f6c6c656374696f6e730a4f726465726564446963740a710b2952710c58010000006b710d4b0173580100000073710e635f5f6275696c74696e5f5f0a7365740a710f5d71104b0461857111527112752e',
    4: '8004957a000000000000007d94288c0161945d94284b014740040000000000004e88898c02c3a99443027879944b014b0286948a090000000000000000404afdffffff4a206cfbff4dffff658c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b01738c0173948f94284b0490752e',
  };
  for (const [proto, hex] of Object.entries(dumps)) {
    it(`reads CPython protocol ${proto}`, () => {
      const v = unpickle(Buffer.from(hex, 'hex')) as Map<string, unknown>;
      expect(v).toBeInstanceOf(Map);
      expect(v.get('a')).toEqual([1, 2.5, null, true, false, 'é', Buffer.from('xy'), [1, 2], 2n ** 70n, -3, -300000, 65535]);
      expect(v.get('od')).toEqual(new Map([['k', 1]]));
      expect(v.get('s')).toEqual(new Set([4]));
    });
  }

  it('does not run anything: unknown globals become inert PyObjects', () => {
    // pickle.dumps(os.system('x')) would be REDUCE of posix.system; here as a hand-written protocol-2 stream
    const evil = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from('cposix\nsystem\n'), Buffer.from([0x58, 2, 0, 0, 0]), Buffer.from('ls'), Buffer.from([0x85, 0x52, 0x2e])]);
    const v = unpickle(evil) as PyObject;
    expect(v).toBeInstanceOf(PyObject);
    expect(v.cls).toBe('posix.system');
    expect(v.args).toEqual(['ls']);
  });

  it('truncated or unknown input is an InputError with the opcode position', () => {
    const b = Buffer.from(dumps[2], 'hex');
    expect(() => unpickle(b.subarray(0, 40), { file: 'x.pkl' })).toThrow(/x\.pkl: pickle opcode 0x.. at byte \d+: .*truncated/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0xff]), { file: 'y.pkl' })).toThrow(/y\.pkl: pickle opcode 0xff at byte 2: unsupported opcode 0xff/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0x68, 0x05, 0x2e]))).toThrow(/memo key 5 was never stored/);
  });
});
