#!/usr/bin/env node
// Encodes the feature stores shipped in datasets/features/: MobileNet v1 (cut at conv_pw_12_relu, 96 px)
// features of up to PER_CLASS training images per class of each source the meta-training database and
// the CIFAR-10 meta-test use. Resumable (finished chunks are reused).
//   node tools/database/encode-features.mjs [mnist fashion-mnist cifar10] [--per-class 100]
// Needs built packages (npx nx run-many -t build) and ../shared/data/mobilenet-v1-imagenet.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@metad2a/nn';
import { encodeDataset, loadMobileNetExtractor, openDataset } from '@metad2a/data-pipeline';
import { ProgressBar } from '@metad2a/cli-kit';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const args = process.argv.slice(2);
const pcIdx = args.indexOf('--per-class');
const perClass = pcIdx >= 0 ? Number(args.splice(pcIdx, 2)[1]) : 100;
const names = args.length ? args : ['mnist', 'fashion-mnist', 'cifar10'];
const specs = { mnist: 'mnist', 'fashion-mnist': 'fashion-mnist', cifar10: path.resolve(root, '../shared/data/cifar10') };

await initBackend({ quiet: true });
const extractor = await loadMobileNetExtractor({ source: path.resolve(root, '../shared/data/mobilenet-v1-imagenet'), inputSize: 96 });
for (const name of names) {
  if (!specs[name]) throw new Error(`unknown source '${name}' (known: ${Object.keys(specs).join(', ')})`);
  const ds = await openDataset(specs[name], { split: 'train', name });
  const bar = new ProgressBar(`encode ${name}`, 1);
  const store = await encodeDataset(ds, {
    out: path.join(root, 'datasets/features', `${name}.json`),
    extractor,
    perClass,
    seed: 2026,
    onProgress: (done, total) => {
      bar.setTotal(total);
      bar.update(done);
    },
  });
  console.log(`${name}: ${store.manifest.classes.length} classes x ${store.manifest.counts[0]} rows x ${store.manifest.dims} dims (${store.manifest.extractor})`);
  store.close();
}
