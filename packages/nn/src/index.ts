export const PACKAGE = '@metad2a/nn';
