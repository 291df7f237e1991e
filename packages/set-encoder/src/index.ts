export * from './blocks.js';
export * from './dataset-encoder.js';
