import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { InputError, type InputLocation } from '@metad2a/core';
import { decodeImage, grayToRgb, planarToRgb, type RgbImage } from './image.js';

export type ImageDatasetKind = 'image-folder' | 'cifar10' | 'cifar100' | 'idx';

/**
 * A labelled image collection that decodes on demand: nothing but the labels is held in memory,
 * so binaries of any size are read record by record (fs.readSync at computed offsets).
 */
export interface ImageDataset {
  readonly kind: ImageDatasetKind;
  /** Short name, used for task ids and feature-store manifests (e.g. 'cifar10', or the folder name). */
  readonly name: string;
  /** The files or folder it reads. */
  readonly source: string[];
  /** Class names; label k is classes[k]. */
  readonly classes: string[];
  /** Label of every record. */
  readonly labels: Int32Array;
  readonly size: number;
  /** Decode records (RGB, native size) in the order asked. */
  read(indices: readonly number[]): Promise<RgbImage[]>;
  /** Where record i lives, for messages: 'file, record 12' or a file path. */
  describe(index: number): string;
  close(): void;
}

/** Record indices of every class, in dataset order. */
export function indicesByClass(labels: Int32Array, numClasses: number): number[][] {
  const out: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) out[labels[i]].push(i);
  return out;
}

export function classCounts(labels: Int32Array, numClasses: number): number[] {
  const out = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) out[labels[i]]++;
  return out;
}

function checkIndex(ds: { size: number; name: string }, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= ds.size) throw new RangeError(`${ds.name}: record index ${i} out of range 0..${ds.size - 1}`);
}

// ---------------------------------------------------------------------------------------------
// Image folders

const IMAGE_EXT = /\.(jpe?g|png)$/i;

/**
 * One subfolder per class (sorted names give labels 0..C-1, like torchvision's ImageFolder), each
 * holding .jpg/.jpeg/.png files; other files are ignored. An empty class folder is an error, as is a
 * folder with no class folders.
 */
export function openImageFolder(dir: string, options: { name?: string } = {}): ImageDataset {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError({ file: dir }, 'image folder not found');
  const classes = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name)
    .sort();
  if (classes.length === 0) throw new InputError({ file: dir }, 'no class subfolders', 'an image folder holds one subfolder per class, e.g. cats/001.jpg, dogs/002.png');
  const files: string[] = [];
  const labels: number[] = [];
  classes.forEach((c, k) => {
    const names = fs
      .readdirSync(path.join(dir, c), { withFileTypes: true })
      .filter((d) => d.isFile() && !d.name.startsWith('.') && IMAGE_EXT.test(d.name))
      .map((d) => d.name)
      .sort();
    if (names.length === 0) throw new InputError({ file: path.join(dir, c) }, `class '${c}' is empty (no .jpg/.jpeg/.png files)`, 'remove the folder or add images');
    for (const n of names) {
      files.push(path.join(dir, c, n));
      labels.push(k);
    }
  });
  const labelArr = Int32Array.from(labels);
  const ds: ImageDataset = {
    kind: 'image-folder',
    name: options.name ?? path.basename(path.resolve(dir)),
    source: [dir],
    classes,
    labels: labelArr,
    size: files.length,
    async read(indices) {
      return indices.map((i) => {
        checkIndex(ds, i);
        return decodeImage(fs.readFileSync(files[i]), files[i]);
      });
    },
    describe: (i) => files[i],
    close() {},
  };
  return ds;
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 / CIFAR-100 binary

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
export const CIFAR100_CLASSES = (
  'apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle ' +
  'caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish ' +
  'forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle ' +
  'mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine ' +
  'possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar ' +
  'sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree ' +
  'wolf woman worm'
).split(' ');
export const CIFAR100_COARSE_CLASSES = (
  'aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices household_furniture ' +
  'insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores ' +
  'medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1 vehicles_2'
).split(' ');

export interface CifarOptions {
  variant: 'cifar10' | 'cifar100';
  /** CIFAR-100 only: use the 100 fine labels (default) or the 20 coarse ones. */
  labelMode?: 'fine' | 'coarse';
  /** Class names; default: a names file beside the first binary (batches.meta.txt, fine_label_names.txt, ...) or the official names. */
  classes?: string[];
  name?: string;
}

const PIXELS = 3072;

function readNamesFile(file: string, expected: number): string[] | null {
  if (!fs.existsSync(file)) return null;
  const names = fs
    .readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length !== expected) throw new InputError({ file }, `has ${names.length} class names, expected ${expected}`);
  return names;
}

/** CIFAR binaries: 1 label byte (CIFAR-100: coarse then fine) + 3072 planar RGB bytes per 32x32 record. */
export function openCifarBinary(files: string[], options: CifarOptions): ImageDataset {
  if (files.length === 0) throw new InputError({}, 'no CIFAR binary files given');
  const labelBytes = options.variant === 'cifar100' ? 2 : 1;
  const recordSize = labelBytes + PIXELS;
  const fine = options.variant === 'cifar100' && (options.labelMode ?? 'fine') === 'fine';
  const labelOffset = options.variant === 'cifar100' ? (fine ? 1 : 0) : 0;
  const numClasses = options.variant === 'cifar10' ? 10 : fine ? 100 : 20;
  const dir = path.dirname(files[0]);
  const classes =
    options.classes ??
    (options.variant === 'cifar10'
      ? readNamesFile(path.join(dir, 'batches.meta.txt'), 10) ?? CIFAR10_CLASSES
      : fine
        ? readNamesFile(path.join(dir, 'fine_label_names.txt'), 100) ?? CIFAR100_CLASSES
        : readNamesFile(path.join(dir, 'coarse_label_names.txt'), 20) ?? CIFAR100_COARSE_CLASSES);
  if (classes.length !== numClasses) throw new InputError({ field: 'classes' }, `${classes.length} class names given, ${options.variant} has ${numClasses}`);

  const fds: number[] = [];
  const starts: number[] = []; // first global record index of each file
  const labels: number[] = [];
  try {
    for (const file of files) {
      if (!fs.existsSync(file)) throw new InputError({ file }, 'CIFAR binary not found');
      const bytes = fs.statSync(file).size;
      if (bytes === 0) throw new InputError({ file }, 'empty file');
      if (bytes % recordSize !== 0) {
        const whole = Math.floor(bytes / recordSize);
        const hint =
          bytes % (options.variant === 'cifar10' ? 3074 : 3073) === 0
            ? `the size fits ${options.variant === 'cifar10' ? 'CIFAR-100' : 'CIFAR-10'} records: wrong variant?`
            : 'truncated or not a CIFAR binary';
        throw new InputError(
          { file, record: whole },
          `size ${bytes} is not a multiple of the ${options.variant} record size ${recordSize}: record ${whole} has only ${bytes % recordSize} bytes`,
          hint,
        );
      }
      const fd = fs.openSync(file, 'r');
      fds.push(fd);
      starts.push(labels.length);
      // Scan labels in 1 MiB chunks: only the label bytes stay in memory.
      const n = bytes / recordSize;
      const perChunk = Math.max(1, Math.floor((1 << 20) / recordSize));
      const buf = Buffer.alloc(perChunk * recordSize);
      for (let r0 = 0; r0 < n; r0 += perChunk) {
        const cnt = Math.min(perChunk, n - r0);
        fs.readSync(fd, buf, 0, cnt * recordSize, r0 * recordSize);
        for (let r = 0; r < cnt; r++) {
          const lab = buf[r * recordSize + labelOffset];
          if (lab >= numClasses) {
            throw new InputError(
              { file, record: r0 + r, field: fine || options.variant === 'cifar10' ? 'label' : 'coarse_label' },
              `label ${lab} out of range 0..${numClasses - 1}`,
              options.variant === 'cifar10' ? 'is this a CIFAR-100 file (2 label bytes)?' : undefined,
            );
          }
          labels.push(lab);
        }
      }
    }
  } catch (e) {
    for (const fd of fds) fs.closeSync(fd);
    throw e;
  }
  const locate = (i: number): [number, number] => {
    let f = starts.length - 1;
    while (starts[f] > i) f--;
    return [f, i - starts[f]];
  };
  const rec = Buffer.alloc(recordSize);
  const ds: ImageDataset = {
    kind: options.variant,
    name: options.name ?? options.variant,
    source: files,
    classes,
    labels: Int32Array.from(labels),
    size: labels.length,
    async read(indices) {
      return indices.map((i) => {
        checkIndex(ds, i);
        const [f, r] = locate(i);
        const got = fs.readSync(fds[f], rec, 0, recordSize, r * recordSize);
        if (got !== recordSize) throw new InputError({ file: files[f], record: r }, `short read (${got} of ${recordSize} bytes): file changed on disk?`);
        return planarToRgb(rec.subarray(labelBytes), 32, 32);
      });
    },
    describe(i) {
      const [f, r] = locate(i);
      return `${files[f]}, record ${r}`;
    },
    close() {
      for (const fd of fds.splice(0)) fs.closeSync(fd);
    },
  };
  return ds;
}

// ---------------------------------------------------------------------------------------------
// IDX (MNIST, Fashion-MNIST)

export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function readIdxHeader(head: Buffer, file: string, expectDims: number): number[] {
  if (head.length < 4 + 4 * expectDims) throw new InputError({ file }, 'too short for an IDX header');
  if (head[0] !== 0 || head[1] !== 0) throw new InputError({ file }, 'not an IDX file (magic number must start with two zero bytes)');
  if (head[2] !== 0x08) throw new InputError({ file }, `unsupported IDX element type 0x${head[2].toString(16)} (only unsigned byte, 0x08)`);
  if (head[3] !== expectDims) throw new InputError({ file }, `IDX file has ${head[3]} dimensions, expected ${expectDims} (${expectDims === 3 ? 'images' : 'labels'})`);
  return Array.from({ length: expectDims }, (_, k) => head.readUInt32BE(4 + 4 * k));
}

function gunzipFile(file: string): Buffer {
  try {
    return zlib.gunzipSync(fs.readFileSync(file));
  } catch (e) {
    throw new InputError({ file }, `corrupt gzip data: ${(e as Error).message}`, undefined, { cause: e });
  }
}

export interface IdxOptions {
  classes?: string[];
  name?: string;
}

/**
 * IDX image + label files (MNIST layout), plain or gzipped. Plain files are read by offsets;
 * a gzipped image file is decompressed into memory once (IDX datasets are tens of MB).
 */
export function openIdx(imagesFile: string, labelsFile: string, options: IdxOptions = {}): ImageDataset {
  for (const f of [imagesFile, labelsFile]) if (!fs.existsSync(f)) throw new InputError({ file: f }, 'IDX file not found');
  const isGz = (f: string) => f.endsWith('.gz');
  const labelBuf = isGz(labelsFile) ? gunzipFile(labelsFile) : fs.readFileSync(labelsFile);
  const [nLabels] = readIdxHeader(labelBuf, labelsFile, 1);
  if (labelBuf.length !== 8 + nLabels) {
    throw new InputError({ file: labelsFile, record: Math.min(nLabels, labelBuf.length - 8) }, `header says ${nLabels} labels but the file holds ${labelBuf.length - 8}`);
  }
  const fashion = /fashion/i.test(imagesFile);
  const classes = options.classes ?? (fashion ? FASHION_MNIST_CLASSES : MNIST_CLASSES);
  const labels = new Int32Array(nLabels);
  for (let i = 0; i < nLabels; i++) {
    const v = labelBuf[8 + i];
    if (v >= classes.length) throw new InputError({ file: labelsFile, record: i, field: 'label' }, `label ${v} out of range 0..${classes.length - 1}`);
    labels[i] = v;
  }

  let mem: Buffer | null = null;
  let fd: number | null = null;
  let dims: number[];
  if (isGz(imagesFile)) {
    mem = gunzipFile(imagesFile);
    dims = readIdxHeader(mem, imagesFile, 3);
  } else {
    fd = fs.openSync(imagesFile, 'r');
    const head = Buffer.alloc(16);
    fs.readSync(fd, head, 0, 16, 0);
    try {
      dims = readIdxHeader(head, imagesFile, 3);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }
  const [n, rows, cols] = dims;
  const recordSize = rows * cols;
  const bytes = mem ? mem.length : fs.fstatSync(fd!).size;
  const fail = (loc: InputLocation, msg: string, hint?: string): never => {
    if (fd !== null) fs.closeSync(fd);
    throw new InputError(loc, msg, hint);
  };
  if (bytes !== 16 + n * recordSize) {
    const whole = Math.max(0, Math.floor((bytes - 16) / recordSize));
    fail({ file: imagesFile, record: Math.min(whole, n) }, `header says ${n} images of ${rows}x${cols} (${16 + n * recordSize} bytes) but the ${mem ? 'decompressed ' : ''}file has ${bytes} bytes`, 'truncated download?');
  }
  if (n !== nLabels) fail({ file: labelsFile }, `${nLabels} labels for ${n} images in ${imagesFile}`, 'label mismatch: images and labels files are from different sets?');

  const rec = Buffer.alloc(recordSize);
  const ds: ImageDataset = {
    kind: 'idx',
    name: options.name ?? (fashion ? 'fashion-mnist' : 'mnist'),
    source: [imagesFile, labelsFile],
    classes,
    labels,
    size: n,
    async read(indices) {
      return indices.map((i) => {
        checkIndex(ds, i);
        const off = 16 + i * recordSize;
        const px = mem ? mem.subarray(off, off + recordSize) : (fs.readSync(fd!, rec, 0, recordSize, off), rec);
        return grayToRgb(px, cols, rows);
      });
    },
    describe: (i) => `${imagesFile}, record ${i}`,
    close() {
      if (fd !== null) fs.closeSync(fd);
      fd = null;
      mem = null;
    },
  };
  return ds;
}

/** Find `<split>-images-idx3-ubyte[.gz]` and the matching labels file in a folder (MNIST naming; t10k = test). */
export function findIdxFiles(dir: string, split: 'train' | 'test'): { images: string; labels: string } | null {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return null;
  const names = fs.readdirSync(dir);
  const prefix = split === 'train' ? 'train' : '(?:t10k|test)';
  const pick = (kind: string, d: number) => names.find((n) => new RegExp(`^${prefix}-${kind}[.-]idx${d}-ubyte(\\.gz)?$`).test(n));
  const images = pick('images', 3);
  const labels = pick('labels', 1);
  return images && labels ? { images: path.join(dir, images), labels: path.join(dir, labels) } : null;
}
