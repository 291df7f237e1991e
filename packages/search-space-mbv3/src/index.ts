export const PACKAGE = '@metad2a/search-space-mbv3';
