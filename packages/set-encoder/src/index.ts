export const PACKAGE = '@metad2a/set-encoder';
