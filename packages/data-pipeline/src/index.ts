export const PACKAGE = '@metad2a/data-pipeline';
