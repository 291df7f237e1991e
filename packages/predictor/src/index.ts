export const PACKAGE = '@metad2a/predictor';
