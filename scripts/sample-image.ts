/** `npx tsx scripts/sample-image.ts [index] > image.png`: a Fashion-MNIST test image as PNG, to try the API with. */
import sharp from 'sharp';
import { loadFashionMnist, FASHION_MNIST_CLASSES } from '../shared/node/datasets.js';

const index = Number(process.argv[2] ?? 0);
const test = await loadFashionMnist('test');
if (!Number.isInteger(index) || index < 0 || index >= test.n) {
  process.stderr.write(`index must be a whole number in 0..${test.n - 1}\n`);
  process.exit(2);
}
const px = test.height * test.width;
const png = await sharp(Buffer.from(test.images.subarray(index * px, (index + 1) * px)), {
  raw: { width: test.width, height: test.height, channels: 1 },
})
  .toColourspace('b-w')
  .png()
  .toBuffer();
process.stderr.write(`test image ${index}: ${FASHION_MNIST_CLASSES[test.labels![index]!]}\n`);
process.stdout.write(png);
