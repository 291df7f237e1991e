import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { InputError } from '@metad2a/core';
import { decodeImage, grayToRgb, planarToRgb, resizeRgb, sniffImageFormat } from '../src/index.js';
import { CIFAR_SUBSET, FIXTURES, cifarRecord } from './paths.js';

const TRAIN = path.join(CIFAR_SUBSET, 'train_100per_class.bin');
const tiny = (c: string, f: string) => path.join(FIXTURES, 'tiny', c, f);

describe('decodeImage', () => {
  test('an RGB PNG decodes to exactly the CIFAR record it was made from', () => {
    const img = decodeImage(fs.readFileSync(tiny('cat', 'r300.png')), 'r300.png');
    expect([img.width, img.height]).toEqual([32, 32]);
    expect(Buffer.from(img.data).equals(Buffer.from(cifarRecord(TRAIN, 300).rgb))).toBe(true);
  });

  test('RGBA PNG drops the (opaque) alpha channel', () => {
    const img = decodeImage(fs.readFileSync(tiny('ship', 'r803-rgba.png')), 'x');
    expect(Buffer.from(img.data).equals(Buffer.from(cifarRecord(TRAIN, 803).rgb))).toBe(true);
  });

  test('greyscale PNG becomes RGB with equal channels (Rec.601 luma of the source)', () => {
    const img = decodeImage(fs.readFileSync(tiny('airplane', 'r2-grey.png')), 'x');
    const src = cifarRecord(TRAIN, 2).rgb;
    for (const i of [0, 100, 517, 1023]) {
      const [r, g, b] = [img.data[3 * i], img.data[3 * i + 1], img.data[3 * i + 2]];
      expect(r).toBe(g);
      expect(g).toBe(b);
      expect(r).toBe(Math.round(0.299 * src[3 * i] + 0.587 * src[3 * i + 1] + 0.114 * src[3 * i + 2]));
    }
  });

  test('a JPEG (quality 95) decodes close to its source', () => {
    const img = decodeImage(fs.readFileSync(tiny('airplane', 'r1.jpg')), 'x');
    const src = cifarRecord(TRAIN, 1).rgb;
    let err = 0;
    for (let i = 0; i < src.length; i++) err += Math.abs(img.data[i] - src[i]);
    expect(err / src.length).toBeLessThan(4);
  });

  test('a truncated JPEG and a non-image give errors naming the file', () => {
    const bad = path.join(FIXTURES, 'corrupt/ship/r800-truncated.jpg');
    expect(() => decodeImage(fs.readFileSync(bad), bad)).toThrow(InputError);
    expect(() => decodeImage(fs.readFileSync(bad), bad)).toThrow(/r800-truncated\.jpg: corrupt JPEG/);
    expect(() => decodeImage(Buffer.from('hello world'), 'notes.png')).toThrow(/notes\.png: not a JPEG or PNG/);
    expect(sniffImageFormat(fs.readFileSync(tiny('cat', 'r301.jpg')))).toBe('jpeg');
  });
});

describe('pixel helpers', () => {
  test('grayToRgb and planarToRgb', () => {
    expect(Array.from(grayToRgb(Uint8Array.from([7, 9]), 2, 1).data)).toEqual([7, 7, 7, 9, 9, 9]);
    // planes R=[1,2], G=[3,4], B=[5,6]
    expect(Array.from(planarToRgb(Uint8Array.from([1, 2, 3, 4, 5, 6]), 2, 1).data)).toEqual([1, 3, 5, 2, 4, 6]);
  });

  test('enlarging 2 -> 4 is bilinear with half-pixel centres (hand-derived)', () => {
    // one row [0, 100] -> source x = (o+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25 -> 0, 25, 75, 100
    const img = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 100, 100, 100]) };
    const out = resizeRgb(img, 4, 1);
    expect(Array.from(out.data.filter((_, i) => i % 3 === 0))).toEqual([0, 25, 75, 100]);
  });

  test('shrinking averages areas: 4x4 -> 2x2 is the mean of each 2x2 block, 3 -> 2 weights 2/3 and 1/3', () => {
    const v = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150];
    const img = { width: 4, height: 4, data: Uint8Array.from(v.flatMap((x) => [x, x, x])) };
    const out = resizeRgb(img, 2, 2);
    expect(Array.from(out.data.filter((_, i) => i % 3 === 0))).toEqual([25, 45, 105, 125]);
    const row = { width: 3, height: 1, data: Uint8Array.from([0, 0, 0, 30, 30, 30, 90, 90, 90]) };
    // out0 covers [0,1.5): (0*1 + 30*0.5)/1.5 = 10; out1 covers [1.5,3): (30*0.5 + 90)/1.5 = 70
    expect(Array.from(resizeRgb(row, 2, 1).data.filter((_, i) => i % 3 === 0))).toEqual([10, 70]);
  });

  test('same size is returned unchanged', () => {
    const img = { width: 2, height: 2, data: new Uint8Array(12).fill(3) };
    expect(resizeRgb(img, 2)).toBe(img);
  });
});
