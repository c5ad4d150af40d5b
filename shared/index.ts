// Barrel of the pure core (runtime-neutral). Node-only adapters live in shared/node/ and are imported directly.
export * from './loss/vicreg.js';
export * from './train/lars.js';
export * from './train/schedule.js';
export * from './augment/config.js';
export * from './augment/params.js';
export * from './augment/augment.js';
export * from './data/idx.js';
export * from './data/split.js';
