import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadCheckpoint } from '@metad2a/nn';
import { buildConfig, metaTrain, type EpochLog } from '../src/index.js';
import { buildFixture, smallConfig, type Fixture } from './fixture.js';

let fx: Fixture;
beforeAll(async () => {
  await initBackend({ quiet: true });
  fx = await buildFixture();
});
afterAll(() => fs.rmSync(fx.dir, { recursive: true, force: true }));

describe('generator meta-training', () => {
  it('trains, validates, logs and checkpoints', async () => {
    const out = path.join(fx.dir, 'gen');
    const config = buildConfig({ overrides: smallConfig('generator', fx, out) });
    const t0 = Date.now();
    const res = await metaTrain(config);
    console.log('gen 4 epochs', Date.now() - t0, 'ms', res.history.map((h) => [h.trainLoss.toFixed(3), h.validLoss.toFixed(3)]));
    expect(res.history).toHaveLength(4);
  });
});
