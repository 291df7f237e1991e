import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError, writeFileAtomic } from '@metad2a/core';
import { NB201_EDGES, Nb201Network } from '@metad2a/search-space-201';
import { OfaSubnet, type OfaActivation } from '@metad2a/search-space-mbv3';

/**
 * The trained NB201 cell network as a standard TensorFlow.js layers model (Conv2D, BatchNormalization,
 * AveragePooling2D, Add, Dense: no custom layers), so any tfjs runtime loads it with
 * tf.loadLayersModel. Inference only: BN uses the running statistics. Padding is made explicit where
 * PyTorch's symmetric padding differs from tf's 'same' (the stride-2 convs).
 */
export function nb201ToLayersModel(net: Nb201Network): tf.LayersModel {
  const state = new Map(net.namedParameters());
  const { C, N, inputSize, inChannels, numClasses } = net.config;
  const arch = net.arch;
  const weightsOf = new Map<tf.layers.Layer, tf.Tensor[]>();
  const param = (name: string): tf.Tensor => {
    const v = state.get(name);
    if (!v) throw new Error(`nb201ToLayersModel: parameter '${name}' missing`);
    return v;
  };
  const conv = (x: tf.SymbolicTensor, prefix: string, name: string, filters: number, k: number, stride: number, pad: number): tf.SymbolicTensor => {
    let h = x;
    // 'same' is symmetric only for stride 1 with odd kernels; otherwise pad explicitly like PyTorch.
    const same = stride === 1 && pad === (k - 1) / 2;
    if (!same && pad > 0) h = tf.layers.zeroPadding2d({ padding: pad, name: `${name}_pad` }).apply(h) as tf.SymbolicTensor;
    const layer = tf.layers.conv2d({ filters, kernelSize: k, strides: stride, padding: same ? 'same' : 'valid', useBias: false, name });
    weightsOf.set(layer, [param(`${prefix}.weight`)]);
    return layer.apply(h) as tf.SymbolicTensor;
  };
  const bn = (x: tf.SymbolicTensor, prefix: string, name: string): tf.SymbolicTensor => {
    const layer = tf.layers.batchNormalization({ axis: -1, epsilon: 1e-5, name });
    weightsOf.set(layer, [param(`${prefix}.weight`), param(`${prefix}.bias`), param(`${prefix}.running_mean`), param(`${prefix}.running_var`)]);
    return layer.apply(x) as tf.SymbolicTensor;
  };
  const relu = (x: tf.SymbolicTensor, name: string) => tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;
  const reluConvBn = (x: tf.SymbolicTensor, prefix: string, name: string, cout: number, k: number, stride: number, pad: number) =>
    bn(conv(relu(x, `${name}_relu`), `${prefix}.op.1`, `${name}_conv`, cout, k, stride, pad), `${prefix}.op.2`, `${name}_bn`);

  // Which cell nodes can reach the output (edges into the others never change the logits).
  const matters = [false, false, false, true];
  for (let j = 2; j >= 0; j--) matters[j] = NB201_EDGES.some((e, k) => e.from === j && arch[k] !== 'none' && matters[e.to]);

  const input = tf.input({ shape: [inputSize, inputSize, inChannels], name: 'image' });
  let h = bn(conv(input, 'stem.0', 'stem_conv', C, 3, 1, 1), 'stem.1', 'stem_bn');
  let c = C;
  let idx = 0;
  for (let stage = 0; stage < 3; stage++) {
    if (stage > 0) {
      const p = `cells.${idx}`;
      const main = reluConvBn(reluConvBn(h, `${p}.conv_a`, `cell${idx}_a`, 2 * c, 3, 2, 1), `${p}.conv_b`, `cell${idx}_b`, 2 * c, 3, 1, 1);
      const pooled = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: `cell${idx}_down_pool` }).apply(h) as tf.SymbolicTensor;
      const residual = conv(pooled, `${p}.downsample.1`, `cell${idx}_down_conv`, 2 * c, 1, 1, 0);
      h = tf.layers.add({ name: `cell${idx}_add` }).apply([residual, main]) as tf.SymbolicTensor;
      c *= 2;
      idx++;
    }
    for (let i = 0; i < N; i++, idx++) {
      const nodes: tf.SymbolicTensor[] = [h];
      for (let to = 1; to <= 3; to++) {
        const terms: tf.SymbolicTensor[] = [];
        NB201_EDGES.forEach((e, k) => {
          if (e.to !== to || !matters[to] || arch[k] === 'none') return;
          const src = nodes[e.from];
          const nm = `cell${idx}_n${to}_e${k}`;
          if (arch[k] === 'skip_connect') terms.push(src);
          // tf's 'same' average pooling leaves the padding out of the mean, as count_include_pad=False does.
          else if (arch[k] === 'avg_pool_3x3') terms.push(tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: `${nm}_pool` }).apply(src) as tf.SymbolicTensor);
          else {
            const k1 = arch[k] === 'nor_conv_1x1' ? 1 : 3;
            terms.push(reluConvBn(src, `cells.${idx}.layers.${k}`, nm, c, k1, 1, (k1 - 1) / 2));
          }
        });
        if (terms.length === 0) {
          // A node without live inputs is zero; a frozen all-zero 1x1 conv keeps the graph standard.
          const zero = tf.layers.conv2d({ filters: c, kernelSize: 1, useBias: false, trainable: false, kernelInitializer: 'zeros', name: `cell${idx}_n${to}_zero` });
          nodes.push(zero.apply(h) as tf.SymbolicTensor);
        } else nodes.push(terms.length === 1 ? terms[0] : (tf.layers.add({ name: `cell${idx}_n${to}_sum` }).apply(terms) as tf.SymbolicTensor));
      }
      h = nodes[3];
    }
  }
  h = relu(bn(h, 'lastact.0', 'lastact_bn'), 'lastact_relu');
  h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
  const dense = tf.layers.dense({ units: numClasses, name: 'classifier' });
  weightsOf.set(dense, [param('classifier.weight').transpose(), param('classifier.bias')]);
  const logits = dense.apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: 'nb201_network' });
  for (const [layer, ws] of weightsOf) layer.setWeights(ws);
  // The transposed classifier kernel was a fresh tensor.
  weightsOf.get(dense)![0].dispose();
  return model;
}

/**
 * A trained OFA MobileNetV3 subnet as a standard TensorFlow.js layers model (Conv2D, DepthwiseConv2D,
 * BatchNormalization, ReLU, Multiply, Add, GlobalAveragePooling2D, Reshape, Dense: no custom layers).
 * Inference only (BN running statistics, no dropout). h_swish(x) = x * h_sigmoid(x) and h_sigmoid(x) =
 * relu6(x + 3) / 6 = min(max(x/6 + 1/2, 0), 1): a frozen 1x1 depthwise conv (weight 1/6, bias 1/2)
 * followed by ReLU with maxValue 1. SE multiplies [B,H,W,C] by [B,1,1,C] (Multiply broadcasts).
 * Stride-2 convs pad explicitly like PyTorch (k//2 each side), where tf's 'same' pads unevenly.
 */
export function mbv3ToLayersModel(net: OfaSubnet): tf.LayersModel {
  const state = new Map(net.namedParameters());
  const { resolution, numClasses, blocks } = net.net;
  const weightsOf = new Map<tf.layers.Layer, tf.Tensor[]>();
  const owned: tf.Tensor[] = [];
  const param = (name: string): tf.Tensor => {
    const v = state.get(name);
    if (!v) throw new Error(`mbv3ToLayersModel: parameter '${name}' missing`);
    return v;
  };
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
  const channelsOf = (x: tf.SymbolicTensor) => x.shape[x.shape.length - 1] as number;
  const conv = (x: tf.SymbolicTensor, prefix: string, name: string, k: number, stride: number, depthwise: boolean, bias = false): tf.SymbolicTensor => {
    let h = x;
    const same = stride === 1;
    if (!same && k > 1) h = apply(tf.layers.zeroPadding2d({ padding: Math.floor(k / 2), name: `${name}_pad` }), h);
    const w = param(`${prefix}.weight`);
    const common = { kernelSize: k, strides: stride, padding: (same ? 'same' : 'valid') as 'same' | 'valid', useBias: bias, name };
    const layer = depthwise ? tf.layers.depthwiseConv2d({ ...common, depthMultiplier: 1 }) : tf.layers.conv2d({ ...common, filters: w.shape[3] as number });
    weightsOf.set(layer, bias ? [w, param(`${prefix}.bias`)] : [w]);
    return apply(layer, h);
  };
  const bn = (x: tf.SymbolicTensor, prefix: string, name: string): tf.SymbolicTensor => {
    const layer = tf.layers.batchNormalization({ axis: -1, epsilon: 1e-5, name });
    weightsOf.set(layer, [param(`${prefix}.weight`), param(`${prefix}.bias`), param(`${prefix}.running_mean`), param(`${prefix}.running_var`)]);
    return apply(layer, x);
  };
  const hSigmoid = (x: tf.SymbolicTensor, name: string): tf.SymbolicTensor => {
    const c = channelsOf(x);
    const affine = tf.layers.depthwiseConv2d({ kernelSize: 1, depthMultiplier: 1, useBias: true, trainable: false, name: `${name}_affine` });
    const w = tf.fill([1, 1, c, 1], 1 / 6);
    const b = tf.fill([c], 0.5);
    owned.push(w, b);
    weightsOf.set(affine, [w, b]);
    return apply(tf.layers.reLU({ maxValue: 1, name: `${name}_clip` }), apply(affine, x));
  };
  const act = (x: tf.SymbolicTensor, a: OfaActivation | null, name: string): tf.SymbolicTensor => {
    if (a === 'relu') return apply(tf.layers.reLU({ name: `${name}_relu` }), x);
    if (a === 'h_swish') return apply(tf.layers.multiply({ name: `${name}_hswish` }), [x, hSigmoid(x, `${name}_hsig`)]);
    return x;
  };
  const convBnAct = (x: tf.SymbolicTensor, prefix: string, name: string, k: number, stride: number, a: OfaActivation | null, depthwise = false) =>
    act(bn(conv(x, `${prefix}.conv`, `${name}_conv`, k, stride, depthwise), `${prefix}.bn`, `${name}_bn`), a, name);
  const se = (x: tf.SymbolicTensor, prefix: string, name: string): tf.SymbolicTensor => {
    const c = channelsOf(x);
    let g = apply(tf.layers.globalAveragePooling2d({ name: `${name}_gap` }), x);
    g = apply(tf.layers.reshape({ targetShape: [1, 1, c], name: `${name}_keepdims` }), g);
    g = apply(tf.layers.reLU({ name: `${name}_relu` }), conv(g, `${prefix}.fc.reduce`, `${name}_reduce`, 1, 1, false, true));
    g = hSigmoid(conv(g, `${prefix}.fc.expand`, `${name}_expand`, 1, 1, false, true), `${name}_gate`);
    return apply(tf.layers.multiply({ name: `${name}_scale` }), [x, g]);
  };

  const input = tf.input({ shape: [resolution, resolution, 3], name: 'image' });
  let h = convBnAct(input, 'first_conv', 'stem', 3, 2, 'h_swish');
  blocks.forEach((b, i) => {
    const p = `blocks.${i}.conv`;
    const nm = `block${i}`;
    let y = b.expandRatio === 1 ? h : convBnAct(h, `${p}.inverted_bottleneck`, `${nm}_expand`, 1, 1, b.act);
    y = convBnAct(y, `${p}.depth_conv`, `${nm}_dw`, b.kernel, b.stride, b.act, true);
    if (b.se) y = se(y, `${p}.depth_conv.se`, `${nm}_se`);
    y = bn(conv(y, `${p}.point_linear.conv`, `${nm}_project_conv`, 1, 1, false), `${p}.point_linear.bn`, `${nm}_project_bn`);
    h = b.residual ? apply(tf.layers.add({ name: `${nm}_add` }), [y, h]) : y;
  });
  h = convBnAct(h, 'final_expand_layer', 'final_expand', 1, 1, 'h_swish');
  const c = channelsOf(h);
  h = apply(tf.layers.globalAveragePooling2d({ name: 'gap' }), h);
  h = apply(tf.layers.reshape({ targetShape: [1, 1, c], name: 'gap_keepdims' }), h);
  // feature_mix_layer: 1x1 conv without BN, then h_swish
  h = act(conv(h, 'feature_mix_layer.conv', 'feature_mix_conv', 1, 1, false), 'h_swish', 'feature_mix');
  h = apply(tf.layers.flatten({ name: 'flatten' }), h);
  const dense = tf.layers.dense({ units: numClasses, name: 'classifier' });
  const kernel = param('classifier.linear.weight').transpose();
  owned.push(kernel);
  weightsOf.set(dense, [kernel, param('classifier.linear.bias')]);
  const logits = apply(dense, h);
  const model = tf.model({ inputs: input, outputs: logits, name: 'ofa_mbv3_subnet' });
  try {
    for (const [layer, ws] of weightsOf) layer.setWeights(ws);
  } finally {
    tf.dispose(owned);
  }
  return model;
}

/** The layers model of a trained network of either space (what `metad2a export --trained` writes). */
export function trainedToLayersModel(net: unknown): tf.LayersModel {
  if (net instanceof OfaSubnet) return mbv3ToLayersModel(net);
  if (net instanceof Nb201Network) return nb201ToLayersModel(net);
  throw new Error('trainedToLayersModel: not an Nb201Network or OfaSubnet');
}

/**
 * Write a layers model in the TensorFlow.js format (model.json + one weights.bin shard), each file
 * atomically, weights first. The folder loads with tf.loadLayersModel('file://.../model.json') under
 * tfjs-node, over HTTP in a browser, or with loadTfjsModel here.
 */
export async function saveTfjsModel(model: tf.LayersModel, dir: string, meta: Record<string, unknown> = {}): Promise<{ modelJson: string; weights: string; bytes: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const modelJson = path.join(dir, 'model.json');
  const weights = path.join(dir, 'weights.bin');
  let bytes = 0;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(a.weightData);
      bytes = data.byteLength;
      writeFileAtomic(weights, new Uint8Array(data));
      const json = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: 'metad2a',
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }],
        userDefinedMetadata: meta,
      };
      writeFileAtomic(modelJson, `${JSON.stringify(json)}\n`);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes } };
    }),
  );
  return { modelJson, weights, bytes };
}

/** Bytes per stored element: quantized weights (the converter's --quantize_*) hold 1 or 2, bool 1, the rest 4. */
function weightBytes(w: tf.io.WeightsManifestEntry, file: string): number {
  const stored = w.quantization?.dtype ?? w.dtype;
  const bytes: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };
  const b = bytes[stored];
  if (b === undefined) throw new InputError({ file, field: `weightsManifest ${w.name}` }, `unsupported stored dtype '${stored}'`, `expected one of ${Object.keys(bytes).join(', ')}`);
  return b;
}

/**
 * Load a folder (or model.json) in the TensorFlow.js layers format from disk, without tfjs-node's file:// handler.
 * Weights may be float32 or quantized (uint8/uint16/float16, dequantized by tfjs on load).
 */
export async function loadTfjsModel(p: string): Promise<{ model: tf.LayersModel; meta: Record<string, unknown> }> {
  const file = p.endsWith('.json') ? p : path.join(p, 'model.json');
  if (!fs.existsSync(file)) throw new InputError({ file }, 'TensorFlow.js model.json not found');
  let json: { modelTopology?: unknown; weightsManifest?: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>; userDefinedMetadata?: Record<string, unknown> };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError({ file }, `not valid JSON: ${(e as Error).message}`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) throw new InputError({ file }, 'not a TensorFlow.js layers model (modelTopology / weightsManifest missing)');
  const specs: tf.io.WeightsManifestEntry[] = [];
  const bufs: Buffer[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const shard of group.paths) {
      const f = path.join(path.dirname(file), shard);
      if (!fs.existsSync(f)) throw new InputError({ file: f }, 'weight shard missing', `named by ${file}`);
      bufs.push(fs.readFileSync(f));
    }
  }
  const all = Buffer.concat(bufs);
  const need = specs.reduce((s, w) => s + weightBytes(w, file) * w.shape.reduce((a, b) => a * b, 1), 0);
  if (all.length !== need) throw new InputError({ file }, `weights hold ${all.length} bytes, the manifest needs ${need}`, 'truncated or mismatched weights.bin');
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology as tf.io.ModelJSON['modelTopology'],
      weightSpecs: specs,
      weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
    }),
  );
  return { model, meta: json.userDefinedMetadata ?? {} };
}
