export * from './config.js';
export * from './dag.js';
export * from './cost.js';
export * from './data.js';
export * from './latency.js';
export * from './acc-predictor.js';
export * from './space.js';
export * from './network.js';
