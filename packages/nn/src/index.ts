export * from './backend.js';
export * from './init.js';
export * from './module.js';
