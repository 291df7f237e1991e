export * from './images.js';
export * from './sgd.js';
export * from './recipe.js';
export * from './train.js';
