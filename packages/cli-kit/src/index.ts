import { MetaD2AError } from '@metad2a/core';

/**
 * Run a command-line program: errors we raise on purpose (MetaD2AError: bad input, bad config, an
 * unsatisfiable constraint) print as one line with exit code 2; anything else is a bug and keeps its stack.
 */
export async function runCli(main: () => Promise<unknown>, stderr: NodeJS.WritableStream = process.stderr): Promise<void> {
  try {
    await main();
  } catch (e) {
    if (e instanceof MetaD2AError) {
      stderr.write(`error: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/**
 * A progress bar with rate and ETA. On a TTY it redraws one line; elsewhere (CI, logs) it prints a
 * plain line at most every `logEverySeconds`, so logs stay readable.
 */
export class ProgressBar {
  private done = 0;
  private readonly t0 = Date.now();
  private lastLog = 0;
  private readonly tty: boolean;
  constructor(
    private readonly label: string,
    private total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly logEverySeconds = 10,
  ) {
    this.tty = Boolean(stream.isTTY) && !process.env.CI;
  }

  setTotal(total: number): void {
    this.total = total;
  }

  tick(n = 1, note = ''): void {
    this.update(this.done + n, note);
  }

  update(done: number, note = ''): void {
    this.done = done;
    const now = Date.now();
    const finished = this.done >= this.total;
    if (!this.tty && !finished && now - this.lastLog < this.logEverySeconds * 1000) return;
    this.lastLog = now;
    this.stream.write(this.render(note) + (this.tty && !finished ? '\r' : '\n'));
  }

  render(note = ''): string {
    const elapsed = (Date.now() - this.t0) / 1000;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = this.done >= this.total ? 0 : rate > 0 ? (this.total - this.done) / rate : Infinity;
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    return `${this.label} ${bar} ${this.done}/${this.total} ${(frac * 100).toFixed(0)}% elapsed ${formatSeconds(elapsed)} eta ${formatSeconds(eta)}${note ? ` ${note}` : ''}`;
  }
}

/** Left-aligned text columns (numbers right-aligned), for terminal reports. */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? x.toExponential(3) : x.toFixed(a < 1 ? 4 : 2);
}
