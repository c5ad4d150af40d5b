// Runs before `npm start` and `npm test` (prestart / pretest), with no dependencies of its own, so the
// README's two commands work on a fresh clone: installs node_modules when they are missing or older than
// the lockfile, and installs Fashion-MNIST from Debian's package when it is missing and we can.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (m) => process.stderr.write(`setup: ${m}\n`);
const run = (cmd) => execSync(cmd, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });

const installed = path.join(root, 'node_modules/.package-lock.json');
const lock = path.join(root, 'package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  say('installing dependencies (npm ci; the optional @tensorflow/tfjs-node(-gpu) are skipped where libtensorflow cannot be downloaded)');
  run('npm ci --no-audit --no-fund');
}

const fmnist = process.env.FMNIST_DIR || '/usr/share/datasets/fashion-mnist';
if (!existsSync(path.join(fmnist, 'train-images-idx3-ubyte.gz'))) {
  const canApt = process.getuid?.() === 0 && existsSync('/usr/bin/apt-get') && !process.env.FMNIST_DIR;
  if (canApt) {
    say('installing Fashion-MNIST (apt-get install dataset-fashion-mnist)');
    run('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist');
  } else {
    say(`Fashion-MNIST not found in ${fmnist}: run \`sudo apt-get install -y dataset-fashion-mnist\` or set FMNIST_DIR (training, evaluation and tests need it; serving does not)`);
  }
}

// The console's browser test drives Debian's Chromium (playwright-core cannot download a browser here).
if (process.argv.includes('--browser') && !existsSync('/usr/bin/chromium')) {
  if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    say('installing Chromium for the browser tests (apt-get install chromium)');
    run('apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium');
  } else {
    say('Chromium not found at /usr/bin/chromium: the browser tests will be skipped (`sudo apt-get install -y chromium` to run them)');
  }
}
