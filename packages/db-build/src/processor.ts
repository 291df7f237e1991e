// The BullMQ processor: run by file path in a worker thread of `trainer worker`, one training per job.
import { initBackend } from '@metad2a/nn';
import { runTrainJob, type TrainJobResult } from './job.js';
import type { TrainJob } from './plan.js';

export default async function processTrainJob(job: { id?: string; data: TrainJob }): Promise<TrainJobResult> {
  // Each worker thread has its own tfjs engine; quiet because the worker prints per-job lines itself.
  await initBackend({ quiet: true });
  return runTrainJob(job.data);
}
