export { escapeXml, niceTicks, logTicks, tickLabel, PALETTE } from './svg.js';
export * from './plots.js';
