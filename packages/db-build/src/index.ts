export * from './recipes.js';
export * from './recipes-mbv3.js';
export * from './spaces.js';
export * from './sources.js';
export * from './images.js';
export * from './plan.js';
export * from './job.js';
export * from './database.js';
export * from './local.js';
export * from './queue.js';
export * from './options.js';
// The queue pieces the trainer's commands use, so apps depend on db-build alone.
export { obliterateQueue, queueStatus, startRedisServer, type QueueConfig, type QueueStatus, type RedisServer } from '@metad2a/job-queue';
