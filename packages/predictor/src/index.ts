export * from './predictor.js';
