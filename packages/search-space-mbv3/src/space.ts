import type { ArchDag, Rng, SearchSpace } from '@metad2a/core';
import { canonicalOfaKey, formatOfaConfig, parseOfaConfig, sampleOfaConfig, type OfaConfig } from './config.js';
import {
  MBV3_END_TYPE,
  MBV3_MAX_NODES,
  MBV3_NUM_VERTEX_TYPES,
  MBV3_START_TYPE,
  mbv3FromDag,
  mbv3InvalidReason,
  mbv3ToDag,
  mbv3VertexTypeName,
} from './dag.js';

/** The OFA MobileNetV3 space behind the generic SearchSpace interface the generator and predictor use. */
export const mbv3Space: SearchSpace<OfaConfig> = {
  id: 'mbv3',
  numVertexTypes: MBV3_NUM_VERTEX_TYPES,
  maxNodes: MBV3_MAX_NODES,
  startType: MBV3_START_TYPE,
  endType: MBV3_END_TYPE,
  vertexTypeName: mbv3VertexTypeName,
  toDag: (arch: OfaConfig): ArchDag => mbv3ToDag(arch),
  fromDag: (dag: ArchDag): OfaConfig | null => mbv3FromDag(dag),
  invalidReason: (dag: ArchDag): string | null => mbv3InvalidReason(dag),
  format: (arch: OfaConfig): string => formatOfaConfig(arch),
  parse: (text: string): OfaConfig => parseOfaConfig(text),
  canonicalKey: (arch: OfaConfig): string => canonicalOfaKey(arch),
  sample: (rng: Rng): OfaConfig => sampleOfaConfig(rng),
};
