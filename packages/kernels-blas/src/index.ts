export const PACKAGE = '@metad2a/kernels-blas';
