export const PACKAGE = '@metad2a/search';
