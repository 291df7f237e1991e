export * from './errors.js';
export * from './rng.js';
export * from './stats.js';
export * from './dag.js';
export * from './search-space.js';
export * from './atomic.js';
export * from './paths.js';
