export const PACKAGE = '@metad2a/search-space-201';
