export const PACKAGE = '@metad2a/dag-vae';
