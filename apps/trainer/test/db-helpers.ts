import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const cli = path.join(root, 'apps/trainer/dist/index.js');

/** A running trainer subprocess whose output is collected line by line. */
export interface Proc {
  proc: ChildProcess;
  out: string[];
  err: string[];
  done: Promise<number | null>;
}

export function start(args: string[], env: Record<string, string> = {}): Proc {
  const proc = spawn(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, CI: '1', METAD2A_QUIET: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  const err: string[] = [];
  const collect = (stream: NodeJS.ReadableStream, into: string[]) => {
    let buf = '';
    stream.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      into.push(...parts);
    });
    stream.on('end', () => buf && into.push(buf));
  };
  collect(proc.stdout!, out);
  collect(proc.stderr!, err);
  const done = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  return { proc, out, err, done };
}

/** Run to completion; returns exit code and output. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string[]; err: string[] }> {
  const p = start(args, env);
  const code = await p.done;
  return { code, out: p.out, err: p.err };
}

export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function tmpDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `trainer-${label}-`));
}

/** The tiny plan both e2e tests use: real CIFAR-10 images, 2-class tasks, the 1-epoch C=4 N=1 recipe. */
export const TINY_ARGS = ['--space', 'nb201', '--sources', 'cifar10-subset', '--recipe', 'tiny-c4n1-16px-1ep', '--classes-per-task', '2', '--test-per-class', '10', '--seed', '3'];
