export * from './config.js';
export * from './plateau.js';
export * from './adam.js';
export * from './data.js';
export * from './train.js';
export * from './run.js';
