// Barrel of the pure core (runtime-neutral). Node-only adapters live in shared/node/ and are imported directly.
export * from './loss/vicreg.js';
