export * from './graph-batch.js';
export * from './message-passing.js';
export * from './encoder.js';
export * from './decoder.js';
export * from './generator.js';
