// Placeholder API, replaced by the real addon-backed implementation (issue 9).
export interface BlasStatus {
  active: boolean;
  reason?: string;
  threads?: number;
  kernels: string[];
}

let status: BlasStatus = { active: false, reason: 'OpenBLAS kernels not implemented yet', kernels: [] };

/** Register OpenBLAS-backed kernels for a tfjs backend ('wasm' or 'cpu'). Never throws: reports why it is inactive. */
export function registerBlasKernels(_backendName: string): BlasStatus {
  return status;
}

export function blasStatus(): BlasStatus {
  return status;
}
