import fs from 'node:fs';
import path from 'node:path';
import { parseStream } from 'fast-csv';
import { InputError } from '@metad2a/core';
import { npyToNumbers, readNpyHeader, type NpyHeader } from './npy.js';

/**
 * Image features computed elsewhere (a CSV or .npy file), one row per image. Rows are read on
 * demand for .npy (by offset); CSV is parsed once, streaming, into memory.
 */
export interface FeatureDataset {
  readonly kind: 'features';
  readonly name: string;
  readonly source: string[];
  readonly classes: string[];
  readonly labels: Int32Array;
  readonly size: number;
  readonly dims: number;
  /** The extractor id the features came from, if the file or the caller says so. */
  readonly extractor: string | null;
  /** Rows in the order asked, as one [indices.length, dims] array. */
  readRows(indices: readonly number[]): Float32Array;
  describe(index: number): string;
  close(): void;
}

export interface FeatureFileOptions {
  /** Extractor id of these features (e.g. 'resnet18-imagenet@32'); overrides a '# extractor:' line. */
  extractor?: string;
  /** Fix the class list and order; labels not in it are errors. Default: sorted distinct labels (numeric order if all are integers). */
  classes?: string[];
  /** .npy only: the labels file (.npy of integers, or .txt with one label per line). Default: labels.npy/labels.txt or <stem>.labels.npy/.txt beside it. */
  labels?: string;
  name?: string;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|Infinity|nan|NaN)$/;

function orderClasses(raw: string[], given: string[] | undefined, where: (i: number) => { file: string; line?: number; record?: number }): { classes: string[]; labels: Int32Array } {
  let classes: string[];
  if (given) {
    classes = given;
  } else {
    const distinct = [...new Set(raw)];
    const allInt = distinct.every((s) => /^\d+$/.test(s));
    classes = allInt ? distinct.sort((a, b) => Number(a) - Number(b)) : distinct.sort();
  }
  const pos = new Map(classes.map((c, i) => [c, i]));
  const labels = new Int32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const k = pos.get(raw[i]);
    if (k === undefined) throw new InputError({ ...where(i), field: 'label' }, `label '${raw[i]}' is not one of the ${classes.length} given classes`, 'label mismatch');
    labels[i] = k;
  }
  if (given) {
    const counts = new Array<number>(classes.length).fill(0);
    for (const l of labels) counts[l]++;
    const empty = counts.findIndex((c) => c === 0);
    if (empty >= 0) throw new InputError({ file: where(0).file }, `class '${classes[empty]}' has no rows`, 'empty class');
  }
  return { classes, labels };
}

/**
 * CSV features: one row per image, `label,f1,...,fD`. Optional leading '#' lines (a line
 * '# extractor: <id>' records the extractor), an optional header row (detected when its feature
 * columns are not numbers; a column named 'label' or 'class' is the label, otherwise the first).
 */
export async function readFeaturesCsv(file: string, options: FeatureFileOptions = {}): Promise<FeatureDataset> {
  if (!fs.existsSync(file)) throw new InputError({ file }, 'features file not found');
  // Leading comment lines are handled here so that line numbers in errors stay exact.
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(65536);
  const got = fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  const text = head.toString('utf8', 0, got);
  let offset = 0;
  let commentLines = 0;
  let extractor: string | null = null;
  while (text[offset] === '#') {
    const end = text.indexOf('\n', offset);
    if (end < 0) break;
    const line = text.slice(offset + 1, end).trim();
    const m = /^extractor\s*[:=]\s*(\S+)/i.exec(line);
    if (m) extractor = m[1];
    offset = end + 1;
    commentLines++;
  }
  const byteStart = Buffer.byteLength(text.slice(0, offset));

  const rawLabels: string[] = [];
  const rowLines: number[] = []; // file line of every data row, for messages
  const chunks: Float32Array[] = [];
  let cur = new Float32Array(0);
  let curRows = 0;
  let dims = -1;
  let labelCol = 0;
  let row = 0;
  let headerSeen = false;
  const lineOf = (r: number) => r + 1 + commentLines;

  await new Promise<void>((resolve, reject) => {
    const stream = fs.createReadStream(file, { start: byteStart });
    const parser = parseStream(stream, { headers: false, ignoreEmpty: false, trim: true });
    parser.on('error', (e: Error) => reject(new InputError({ file, line: lineOf(row) }, `CSV syntax error: ${e.message}`, undefined, { cause: e })));
    parser.on('data', (fields: string[]) => {
      const line = lineOf(row);
      row++;
      try {
        if (fields.length === 0 || (fields.length === 1 && fields[0] === '')) return; // blank line
        if (dims < 0) {
          const featureCells = fields.filter((_, i) => i !== 0);
          const isHeader = !headerSeen && featureCells.some((c) => !NUMBER.test(c));
          if (isHeader) {
            headerSeen = true;
            const k = fields.findIndex((c) => /^(label|class)$/i.test(c));
            labelCol = k >= 0 ? k : 0;
            dims = fields.length - 1;
            if (dims < 1) throw new InputError({ file, line }, 'header has no feature columns');
            return;
          }
          dims = fields.length - 1;
          if (dims < 1) throw new InputError({ file, line }, 'a row needs a label and at least one feature', 'format: label,f1,f2,...');
        }
        if (fields.length !== dims + 1) throw new InputError({ file, line }, `${fields.length} fields, expected ${dims + 1} (label + ${dims} features)`);
        if (curRows * dims >= cur.length) {
          if (curRows > 0) chunks.push(cur);
          cur = new Float32Array(dims * 1024);
          curRows = 0;
        }
        let d = 0;
        for (let i = 0; i < fields.length; i++) {
          if (i === labelCol) continue;
          const v = Number(fields[i]);
          if (fields[i] === '' || !Number.isFinite(v)) throw new InputError({ file, line, column: i + 1 }, `feature value '${fields[i]}' is not a finite number`);
          cur[curRows * dims + d++] = v;
        }
        const label = fields[labelCol];
        if (label === '') throw new InputError({ file, line, column: labelCol + 1, field: 'label' }, 'empty label');
        rawLabels.push(label);
        rowLines.push(line);
        curRows++;
      } catch (e) {
        stream.destroy();
        reject(e);
      }
    });
    parser.on('end', () => resolve());
  });
  if (rawLabels.length === 0) throw new InputError({ file }, 'no feature rows');
  chunks.push(cur.subarray(0, curRows * dims));
  const all = new Float32Array(rawLabels.length * dims);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  const { classes, labels } = orderClasses(rawLabels, options.classes, (i) => ({ file, line: rowLines[i] }));
  return {
    kind: 'features',
    name: options.name ?? path.basename(file).replace(/\.[^.]+$/, ''),
    source: [file],
    classes,
    labels,
    size: labels.length,
    dims,
    extractor: options.extractor ?? extractor,
    readRows(indices) {
      const out = new Float32Array(indices.length * dims);
      indices.forEach((i, k) => out.set(all.subarray(i * dims, (i + 1) * dims), k * dims));
      return out;
    },
    describe: (i) => `${file}, record ${i}`,
    close() {},
  };
}

function findLabelsFile(file: string): string | null {
  const dir = path.dirname(file);
  const stem = path.basename(file).replace(/\.npy$/, '');
  for (const n of [`${stem}.labels.npy`, `${stem}.labels.txt`, 'labels.npy', 'labels.txt']) {
    const p = path.join(dir, n);
    if (fs.existsSync(p) && p !== file) return p;
  }
  return null;
}

/** .npy features [N, D] (float32/float64) with labels from a .npy of integers or a .txt file (one label per line). */
export function readFeaturesNpy(file: string, options: FeatureFileOptions = {}): FeatureDataset {
  if (!fs.existsSync(file)) throw new InputError({ file }, 'features file not found');
  const fd = fs.openSync(file, 'r');
  let h: NpyHeader;
  try {
    h = readNpyHeader(file, fd);
    if (h.dtype !== 'f4' && h.dtype !== 'f8') throw new InputError({ file, field: 'descr' }, `features must be float32 or float64, got ${h.dtype}`);
    if (h.shape.length !== 2) throw new InputError({ file, field: 'shape' }, `features must be 2-D [images, dims], got shape (${h.shape.join(', ')})`);
    const need = h.dataOffset + h.shape[0] * h.shape[1] * h.itemSize;
    const size = fs.fstatSync(fd).size;
    if (size < need) {
      const rowBytes = h.shape[1] * h.itemSize;
      throw new InputError({ file, record: Math.floor((size - h.dataOffset) / rowBytes) }, `file has ${size} bytes, shape (${h.shape.join(', ')}) needs ${need}`, 'truncated');
    }
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  const [n, dims] = h.shape;
  const labelsFile = options.labels ?? findLabelsFile(file);
  if (!labelsFile) {
    fs.closeSync(fd);
    throw new InputError({ file }, 'no labels file found', `put labels.npy or ${path.basename(file, '.npy')}.labels.txt beside it, or pass the labels path`);
  }
  let raw: string[];
  try {
    if (labelsFile.endsWith('.npy')) {
      const lh = readNpyHeader(labelsFile);
      if (lh.dtype.startsWith('f')) throw new InputError({ file: labelsFile, field: 'descr' }, 'labels must be integers');
      const count = lh.shape.reduce((a, b) => a * b, 1);
      if (lh.shape.length !== 1 && !(lh.shape.length === 2 && lh.shape[1] === 1)) throw new InputError({ file: labelsFile, field: 'shape' }, `labels must be 1-D, got (${lh.shape.join(', ')})`);
      const buf = fs.readFileSync(labelsFile).subarray(lh.dataOffset, lh.dataOffset + count * lh.itemSize);
      if (buf.length < count * lh.itemSize) throw new InputError({ file: labelsFile }, 'truncated labels array');
      raw = Array.from(npyToNumbers(buf, lh.dtype), (v) => String(v));
    } else {
      raw = fs.readFileSync(labelsFile, 'utf8').split(/\r?\n/);
      while (raw.length && raw[raw.length - 1].trim() === '') raw.pop();
      raw = raw.map((s) => s.trim());
      const blank = raw.findIndex((s) => s === '');
      if (blank >= 0) throw new InputError({ file: labelsFile, line: blank + 1 }, 'empty label');
    }
    if (raw.length !== n) throw new InputError({ file: labelsFile }, `${raw.length} labels for ${n} feature rows in ${file}`, 'label mismatch');
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  const { classes, labels } = orderClasses(raw, options.classes, (i) => (labelsFile.endsWith('.txt') ? { file: labelsFile, line: i + 1 } : { file: labelsFile, record: i }));
  const rowBytes = dims * h.itemSize;
  let open: number | null = fd;
  return {
    kind: 'features',
    name: options.name ?? path.basename(file, '.npy'),
    source: [file, labelsFile],
    classes,
    labels,
    size: n,
    dims,
    extractor: options.extractor ?? null,
    readRows(indices) {
      if (open === null) throw new Error(`${file}: dataset closed`);
      const out = new Float32Array(indices.length * dims);
      const buf = Buffer.alloc(rowBytes);
      indices.forEach((i, k) => {
        if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`${file}: row ${i} out of range 0..${n - 1}`);
        fs.readSync(open!, buf, 0, rowBytes, h.dataOffset + i * rowBytes);
        if (h.dtype === 'f4') out.set(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + rowBytes)), k * dims);
        else out.set(npyToNumbers(buf, 'f8'), k * dims);
        for (let d = 0; d < dims; d++) {
          if (!Number.isFinite(out[k * dims + d])) throw new InputError({ file, record: i, column: d }, `feature value ${out[k * dims + d]} is not finite`);
        }
      });
      return out;
    },
    describe: (i) => `${file}, record ${i}`,
    close() {
      if (open !== null) fs.closeSync(open);
      open = null;
    },
  };
}
