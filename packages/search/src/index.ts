export * from './types.js';
export * from './pipeline.js';
export * from './evaluate.js';
export * from './baselines.js';
export * from './model.js';
