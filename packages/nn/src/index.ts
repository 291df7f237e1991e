export * from './backend.js';
export * from './init.js';
export * from './module.js';
export * from './checkpoint.js';
export * from './bundle.js';
export { importTorchStateDict, readTorchFile, TorchStateDict, TorchTensor, TorchStorage, type TorchDtype, type TorchFile } from './torch.js';
export { unpickle, PyGlobal, PyObject, pyAttributes, type UnpickleOptions, type GlobalHandler } from './pickle.js';
export { ZipReader, type ZipEntry } from './zip.js';
export { hostOp, batchNormTrain, boxMean3x3, type BatchNormTrainResult, multiLinear, residualReluLinear, fusedOps, fusedOpsAvailable, splitHeads, mergeHeads, attentionHeads, fusedAdamUpdate, type AdamUpdate } from './fused.js';
