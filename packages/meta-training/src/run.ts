import { loadConfigFile, parseSetOverrides, resolveConfig, type ConfigLayer, type MetaTrainConfig } from './config.js';
import { metaTrain, type MetaTrainOptions, type MetaTrainResult } from './train.js';

/**
 * The configuration of a run from an optional YAML/JSON file, `--set key=value` items and
 * command-line options (later layers win). `overrides` use config keys; undefined values are ignored.
 */
export function buildConfig(options: { file?: string; set?: readonly string[]; overrides?: Record<string, unknown>; overrideSource?: string }): MetaTrainConfig {
  const layers: ConfigLayer[] = [];
  if (options.file) layers.push(loadConfigFile(options.file));
  if (options.set?.length) layers.push(parseSetOverrides(options.set));
  const o = Object.fromEntries(Object.entries(options.overrides ?? {}).filter(([, v]) => v !== undefined));
  layers.push({ source: options.overrideSource ?? 'command-line options', values: o });
  return resolveConfig(layers);
}

export function metaTrainGenerator(config: Omit<MetaTrainConfig, 'model'> & { model?: 'generator' }, options: MetaTrainOptions = {}): Promise<MetaTrainResult> {
  return metaTrain({ ...config, model: 'generator' }, options);
}

export function metaTrainPredictor(config: Omit<MetaTrainConfig, 'model'> & { model?: 'predictor' }, options: MetaTrainOptions = {}): Promise<MetaTrainResult> {
  return metaTrain({ ...config, model: 'predictor' }, options);
}
