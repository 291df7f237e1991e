import { ConfigError, MetaD2AError } from '@metad2a/core';
import type { QueueConfig } from '@metad2a/job-queue';

/** Default Redis URL of the queue commands: $METAD2A_REDIS_URL, else the local default port. */
export const REDIS_URL_ENV = 'METAD2A_REDIS_URL';
export const DEFAULT_QUEUE = 'metad2a-db';

export function queueConfigOf(options: { redis?: string; queue?: string; prefix?: string }): QueueConfig {
  const url = options.redis ?? process.env[REDIS_URL_ENV] ?? 'redis://127.0.0.1:6379';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError('redis', `'${url}' is not a URL`, 'expected redis://host:port');
  }
  if (u.protocol !== 'redis:') throw new ConfigError('redis', `'${url}' is not a redis:// URL`);
  const name = options.queue ?? DEFAULT_QUEUE;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ConfigError('queue', `'${name}' may only hold letters, digits, '.', '_' and '-'`);
  return { url, name, prefix: options.prefix ?? 'metad2a' };
}

/** --sources accepts repeated values and comma-separated lists. */
export function splitList(values: ReadonlyArray<string | number> | string | undefined): string[] {
  if (values === undefined) return [];
  const list = Array.isArray(values) ? values : [values as string];
  return list.flatMap((v) => String(v).split(',')).map((s) => s.trim()).filter(Boolean);
}

/**
 * Fail fast with one line when Redis cannot be reached (BullMQ itself would retry forever): one
 * PING over a plain socket, within `timeoutMs`.
 */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  const u = new URL(url);
  const host = u.hostname || '127.0.0.1';
  const port = Number(u.port || 6379);
  const { connect } = await import('node:net');
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      sock.destroy();
      reject(new MetaD2AError('E_REDIS', `cannot reach Redis at ${url}: ${why}`));
    };
    const sock = connect(port, host);
    sock.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs} ms`));
    sock.once('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    let reply = '';
    sock.on('data', (d) => {
      reply += d.toString();
      if (!reply.includes('\r\n')) return;
      sock.destroy();
      // -NOAUTH means it is there and wants a password, which the URL carries for BullMQ.
      if (reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')) resolve();
      else reject(new MetaD2AError('E_REDIS', `${url} did not answer PING like Redis: ${reply.split('\r\n')[0].slice(0, 80)}`));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}
