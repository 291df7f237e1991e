import { ConfigError } from '@metad2a/core';
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
