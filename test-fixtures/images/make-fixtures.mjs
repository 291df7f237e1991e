// Regenerates the tiny image-folder fixture from ../shared/data/cifar10-subset (run from the repo root:
// `node test-fixtures/images/make-fixtures.mjs`). Output is committed; tests never run this.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = fs.readFileSync(path.resolve(here, '../../../shared/data/cifar10-subset/train_100per_class.bin'));
const rgbaOf = (r) => {
  const rec = bin.subarray(r * 3073 + 1, (r + 1) * 3073);
  const out = Buffer.alloc(32 * 32 * 4);
  for (let i = 0; i < 1024; i++) {
    out[4 * i] = rec[i];
    out[4 * i + 1] = rec[1024 + i];
    out[4 * i + 2] = rec[2048 + i];
    out[4 * i + 3] = 255;
  }
  return out;
};
const grey = (rgba) => {
  const out = Buffer.from(rgba);
  for (let i = 0; i < out.length; i += 4) {
    const g = Math.round(0.299 * out[i] + 0.587 * out[i + 1] + 0.114 * out[i + 2]);
    out[i] = out[i + 1] = out[i + 2] = g;
  }
  return out;
};
const writePng = (file, data, colorType) => {
  const png = new PNG({ width: 32, height: 32 });
  data.copy(png.data);
  fs.writeFileSync(file, PNG.sync.write(png, { colorType }));
};
const writeJpg = (file, data) => fs.writeFileSync(file, jpeg.encode({ width: 32, height: 32, data }, 95).data);

// record r of train_100per_class.bin is class floor(r/100)
const classes = { airplane: 0, cat: 3, ship: 8 };
const tiny = path.join(here, 'tiny');
for (const [name, label] of Object.entries(classes)) {
  const dir = path.join(tiny, name);
  fs.mkdirSync(dir, { recursive: true });
  const r0 = label * 100;
  writePng(path.join(dir, `r${r0}.png`), rgbaOf(r0), 2); // RGB PNG: lossless
  writeJpg(path.join(dir, `r${r0 + 1}.jpg`), rgbaOf(r0 + 1)); // JPEG q95
  writePng(path.join(dir, `r${r0 + 2}-grey.png`), grey(rgbaOf(r0 + 2)), 0); // greyscale PNG
  writePng(path.join(dir, `r${r0 + 3}-rgba.png`), rgbaOf(r0 + 3), 6); // RGBA PNG (opaque)
}
// A folder whose 'ship' class holds one corrupt JPEG (first 300 bytes of a valid one).
const bad = path.join(here, 'corrupt');
fs.mkdirSync(path.join(bad, 'cat'), { recursive: true });
fs.mkdirSync(path.join(bad, 'ship'), { recursive: true });
writePng(path.join(bad, 'cat', 'r300.png'), rgbaOf(300), 2);
const good = jpeg.encode({ width: 32, height: 32, data: rgbaOf(800) }, 95).data;
fs.writeFileSync(path.join(bad, 'ship', 'r800-truncated.jpg'), good.subarray(0, 300));
