import fs from 'node:fs';
import path from 'node:path';
import { parseStream, writeToString } from 'fast-csv';
import { ConfigError, InputError, Rng } from '@metad2a/core';

/** One measured (task, architecture, accuracy) triple of the meta-training database. */
export interface MetaRecord {
  taskId: string;
  /** Source dataset of the task's classes. */
  dataset: string;
  /** Class ids of the source dataset. */
  classes: number[];
  /** Search space name, e.g. 'nb201' or 'mbv3'. */
  searchSpace: string;
  /** Architecture string in that space's notation. */
  arch: string;
  /** Top-1 accuracy in percent. */
  accuracy: number;
  /** Training recipe id (epochs, optimiser, ...), e.g. 'nb201-200ep'. */
  recipe: string;
  /** Training seed; null where the accuracy is a mean over seeds (imported tables). */
  seed: number | null;
  /** ISO-8601 time the record was made. */
  time: string;
}

export const DB_COLUMNS = ['task_id', 'dataset', 'classes', 'search_space', 'arch', 'accuracy', 'recipe', 'seed', 'time'] as const;
type Column = (typeof DB_COLUMNS)[number];

export type DbFormat = 'csv' | 'jsonl';
export function dbFormatOf(file: string): DbFormat {
  return /\.jsonl?$/i.test(file) ? 'jsonl' : 'csv';
}

export interface ReadDatabaseOptions {
  /** Called for recoverable problems (a torn last line); default: print to stderr. */
  onWarning?: (message: string) => void;
  /** Extra check of an architecture string; return a problem or null. */
  validateArch?: (searchSpace: string, arch: string) => string | null;
}

const warnDefault = (m: string) => process.stderr.write(`[metad2a] warning: ${m}\n`);

/** Validate one row given as column -> text (CSV) or value (JSONL); errors name file, line and field. */
function toRecord(get: (c: Column) => unknown, file: string, line: number, options: ReadDatabaseOptions): MetaRecord {
  const bad = (field: Column, problem: string): never => {
    throw new InputError({ file, line, field }, problem);
  };
  const str = (c: Column): string => {
    const v = get(c);
    if (typeof v !== 'string' || v.trim() === '') bad(c, 'missing');
    if (/[\r\n]/.test(v as string)) bad(c, 'contains a line break');
    return v as string;
  };
  const num = (c: Column, v: unknown): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n)) bad(c, `'${String(v)}' is not a number`);
    return n;
  };
  const rawClasses = get('classes');
  let classes: number[];
  if (Array.isArray(rawClasses)) classes = rawClasses.map((v) => num('classes', v));
  else if (typeof rawClasses === 'string' && rawClasses.trim() !== '') classes = rawClasses.split(';').map((v) => num('classes', v));
  else return bad('classes', 'missing');
  if (!classes.every((c) => Number.isInteger(c) && c >= 0)) bad('classes', 'class ids must be non-negative integers');
  if (new Set(classes).size !== classes.length) bad('classes', 'repeated class id');
  const accuracy = num('accuracy', get('accuracy'));
  if (accuracy < 0 || accuracy > 100) bad('accuracy', `${accuracy} is outside 0..100 (percent)`);
  const rawSeed = get('seed');
  let seed: number | null = null;
  if (!(rawSeed === null || rawSeed === undefined || rawSeed === '')) {
    seed = num('seed', rawSeed);
    if (!Number.isInteger(seed)) bad('seed', `${seed} is not an integer`);
  }
  const time = str('time');
  if (Number.isNaN(Date.parse(time))) bad('time', `'${time}' is not an ISO-8601 time`);
  const rec: MetaRecord = {
    taskId: str('task_id'),
    dataset: str('dataset'),
    classes,
    searchSpace: str('search_space'),
    arch: str('arch'),
    accuracy,
    recipe: str('recipe'),
    seed,
    time,
  };
  const archProblem = options.validateArch?.(rec.searchSpace, rec.arch);
  if (archProblem) bad('arch', archProblem);
  return rec;
}

function toRow(r: MetaRecord): Record<Column, string | number | number[] | null> {
  return {
    task_id: r.taskId,
    dataset: r.dataset,
    classes: r.classes,
    search_space: r.searchSpace,
    arch: r.arch,
    accuracy: r.accuracy,
    recipe: r.recipe,
    seed: r.seed,
    time: r.time,
  };
}

/** Byte length of the file up to and including its last '\n' (what a killed writer surely finished). */
function completeLength(file: string): { size: number; complete: number } {
  const size = fs.statSync(file).size;
  if (size === 0) return { size, complete: 0 };
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(65536);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - buf.length);
      fs.readSync(fd, buf, 0, end - start, start);
      const i = buf.subarray(0, end - start).lastIndexOf(0x0a);
      if (i >= 0) return { size, complete: start + i + 1 };
      end = start;
    }
    return { size, complete: 0 };
  } finally {
    fs.closeSync(fd);
  }
}

export interface DatabaseContents {
  records: MetaRecord[];
  /** File line of each record (1-based). */
  lines: number[];
  warnings: string[];
}

/**
 * Read and validate a database (CSV with header, or JSONL). A last line without its newline is
 * what a killed writer leaves: it is ignored with a warning. Every other bad row is an error.
 */
export async function readDatabase(file: string, options: ReadDatabaseOptions = {}): Promise<DatabaseContents> {
  const warn = options.onWarning ?? warnDefault;
  const out: DatabaseContents = { records: [], lines: [], warnings: [] };
  if (!fs.existsSync(file)) throw new InputError({ file }, 'database file not found');
  const { size, complete } = completeLength(file);
  if (complete < size) {
    const msg = `${file}: ignoring an incomplete last line (${size - complete} bytes without a newline, probably from an interrupted writer)`;
    out.warnings.push(msg);
    warn(msg);
  }
  if (complete === 0) return out;
  if (dbFormatOf(file) === 'jsonl') {
    const text = fs.readFileSync(file).subarray(0, complete).toString('utf8');
    text.split('\n').forEach((lineText, i) => {
      if (lineText.trim() === '') return;
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(lineText);
      } catch (e) {
        throw new InputError({ file, line: i + 1 }, `not valid JSON: ${(e as Error).message}`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new InputError({ file, line: i + 1 }, 'each line must be a JSON object');
      out.records.push(toRecord((c) => obj[c], file, i + 1, options));
      out.lines.push(i + 1);
    });
    return out;
  }
  let line = 0;
  let header: string[] | null = null;
  await new Promise<void>((resolve, reject) => {
    const stream = fs.createReadStream(file, { start: 0, end: complete - 1 });
    const parser = parseStream(stream, { headers: false, ignoreEmpty: false });
    parser.on('error', (e: Error) => reject(new InputError({ file, line: line + 1 }, `CSV syntax error: ${e.message}`, undefined, { cause: e })));
    parser.on('data', (fields: string[]) => {
      line++;
      try {
        if (fields.length === 0 || (fields.length === 1 && fields[0] === '')) return;
        if (!header) {
          header = fields.map((f) => f.trim());
          const missing = DB_COLUMNS.filter((c) => !header!.includes(c));
          if (missing.length) throw new InputError({ file, line, field: missing[0] }, `header lacks column(s) ${missing.join(', ')}`, `expected ${DB_COLUMNS.join(',')}`);
          return;
        }
        if (fields.length !== header.length) throw new InputError({ file, line }, `${fields.length} fields, the header has ${header.length}`);
        const h = header;
        out.records.push(toRecord((c) => fields[h.indexOf(c)], file, line, options));
        out.lines.push(line);
      } catch (e) {
        stream.destroy();
        reject(e);
      }
    });
    parser.on('end', () => resolve());
  });
  if (!header) throw new InputError({ file, line: 1 }, 'missing CSV header', `expected ${DB_COLUMNS.join(',')}`);
  return out;
}

/** Identity of a measurement, for resuming: the same task, architecture, recipe and seed. */
export function recordKey(r: Pick<MetaRecord, 'taskId' | 'arch' | 'recipe' | 'seed'>): string {
  return `${r.taskId}\u0000${r.arch}\u0000${r.recipe}\u0000${r.seed ?? ''}`;
}

async function formatLines(records: readonly MetaRecord[], format: DbFormat, file: string, options: ReadDatabaseOptions): Promise<string> {
  // Validate what we write with the same rules as what we read.
  records.forEach((r, i) => toRecord((c) => toRow(r)[c] ?? '', `${file} (record ${i} being appended)`, 0, options));
  if (format === 'jsonl') return records.map((r) => `${JSON.stringify(toRow(r))}\n`).join('');
  const rows = records.map((r) => DB_COLUMNS.map((c) => (c === 'classes' ? r.classes.join(';') : c === 'seed' ? (r.seed === null ? '' : String(r.seed)) : String(toRow(r)[c]))));
  return `${await writeToString(rows, { headers: false })}\n`;
}

/**
 * Append-only writer. On open it validates what is there, cuts off a torn last line (with a
 * warning) so new lines never glue onto it, and writes the CSV header to a new file. Each
 * append is one write of whole lines followed by fsync.
 */
export class MetaDatabaseWriter {
  private keys = new Set<string>();
  private constructor(
    readonly file: string,
    readonly format: DbFormat,
    private fd: number | null,
    private readonly options: ReadDatabaseOptions,
    existing: MetaRecord[],
  ) {
    for (const r of existing) this.keys.add(recordKey(r));
  }

  static async open(file: string, options: ReadDatabaseOptions = {}): Promise<MetaDatabaseWriter> {
    const format = dbFormatOf(file);
    let existing: MetaRecord[] = [];
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    if (fs.existsSync(file) && fs.statSync(file).size > 0) {
      const { size, complete } = completeLength(file);
      existing = (await readDatabase(file, options)).records;
      if (complete < size) fs.truncateSync(file, complete);
    }
    const fd = fs.openSync(file, 'a');
    if (format === 'csv' && fs.fstatSync(fd).size === 0) {
      fs.writeSync(fd, `${DB_COLUMNS.join(',')}\n`);
      fs.fsyncSync(fd);
    }
    return new MetaDatabaseWriter(file, format, fd, options, existing);
  }

  /** Records already in the file (or appended by this writer). */
  get size(): number {
    return this.keys.size;
  }

  /** Whether this measurement is already recorded (skip it when resuming). */
  has(r: Pick<MetaRecord, 'taskId' | 'arch' | 'recipe' | 'seed'>): boolean {
    return this.keys.has(recordKey(r));
  }

  async append(records: MetaRecord | readonly MetaRecord[]): Promise<void> {
    if (this.fd === null) throw new Error(`${this.file}: writer closed`);
    const list = Array.isArray(records) ? (records as readonly MetaRecord[]) : [records as MetaRecord];
    if (list.length === 0) return;
    const text = await formatLines(list, this.format, this.file, this.options);
    fs.writeSync(this.fd, text);
    fs.fsyncSync(this.fd);
    for (const r of list) this.keys.add(recordKey(r));
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export interface SplitOptions {
  /** Validation size: a count (the original holds out 400) or a fraction in (0, 1). */
  valid: number;
  seed: number;
  /** Use this permutation of record positions instead of a seeded one (e.g. the original's _idx file). */
  permutation?: readonly number[];
}

/** Validation = the first `valid` positions of a seeded permutation; train = the rest (the original's rule). */
export function splitRecords<T>(records: readonly T[], options: SplitOptions): { train: T[]; valid: T[]; permutation: number[] } {
  const n = records.length;
  const nValid = options.valid > 0 && options.valid < 1 ? Math.round(options.valid * n) : options.valid;
  if (!Number.isInteger(nValid) || nValid < 0 || nValid > n) throw new ConfigError('valid', `${options.valid}`, `a count 0..${n} or a fraction in (0,1)`);
  const perm = options.permutation ? [...options.permutation] : new Rng(options.seed).permutation(n);
  if (perm.length !== n || new Set(perm).size !== n || perm.some((i) => !Number.isInteger(i) || i < 0 || i >= n)) {
    throw new ConfigError('permutation', `must be a permutation of 0..${n - 1}`);
  }
  return { valid: perm.slice(0, nValid).map((i) => records[i]), train: perm.slice(nValid).map((i) => records[i]), permutation: perm };
}

export interface TargetStats {
  mean: number;
  /** Unbiased (n-1) standard deviation, as torch.std. */
  std: number;
  n: number;
}

/** Mean and unbiased std of accuracies (compute on the training split only). */
export function targetStats(accuracies: readonly number[]): TargetStats {
  const n = accuracies.length;
  if (n < 2) throw new ConfigError('accuracies', `${n} values`, 'at least 2 are needed for a standard deviation');
  let mean = 0;
  for (const a of accuracies) mean += a;
  mean /= n;
  let ss = 0;
  for (const a of accuracies) ss += (a - mean) ** 2;
  const std = Math.sqrt(ss / (n - 1));
  if (!(std > 0)) throw new ConfigError('accuracies', 'all values are equal', 'normalisation needs a spread');
  return { mean, std, n };
}

/**
 * Task-relative target statistics: each task's mean accuracy, and the pooled within-task standard
 * deviation (sum of squared deviations from the task means over N - T degrees of freedom). Targets
 * (acc - task mean) / pooled std / 100 keep the original's scale but carry no task difficulty.
 * `mean` is the overall mean, so denormalising a score gives an accuracy on a task of average difficulty.
 */
export interface TaskTargetStats extends TargetStats {
  taskMeans: Map<string, number>;
}

/** Mean accuracy of each task, tasks in order of first appearance. */
export function taskMeans(records: ReadonlyArray<{ taskId: string; accuracy: number }>): Map<string, number> {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const r of records) {
    const s = sums.get(r.taskId);
    if (s) {
      s.sum += r.accuracy;
      s.n++;
    } else sums.set(r.taskId, { sum: r.accuracy, n: 1 });
  }
  return new Map([...sums].map(([task, s]) => [task, s.sum / s.n]));
}

export function taskTargetStats(records: ReadonlyArray<{ taskId: string; accuracy: number }>): TaskTargetStats {
  const means = taskMeans(records);
  let ss = 0;
  let total = 0;
  for (const r of records) {
    ss += (r.accuracy - means.get(r.taskId)!) ** 2;
    total += r.accuracy;
  }
  const n = records.length;
  const dof = n - means.size;
  if (dof < 1) throw new ConfigError('accuracies', `${n} records in ${means.size} tasks`, 'task-relative targets need a task with at least 2 records');
  const std = Math.sqrt(ss / dof);
  if (!(std > 0)) throw new ConfigError('accuracies', 'every task has equal accuracies', 'normalisation needs a spread within tasks');
  return { mean: total / n, std, n, taskMeans: means };
}

/** The original's regression target: ((acc - mean) / std) / 100. */
export function normalizeAccuracy(acc: number, s: TargetStats): number {
  return (acc - s.mean) / s.std / 100;
}

export function denormalizeAccuracy(y: number, s: TargetStats): number {
  return y * 100 * s.std + s.mean;
}
