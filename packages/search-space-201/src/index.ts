export * from './ops.js';
export * from './dag.js';
export * from './canonical.js';
export * from './cost.js';
export * from './table.js';
export * from './space.js';
export * from './network.js';
