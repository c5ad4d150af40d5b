// wrangler bundles an imported `.wasm` file as a precompiled module (CompiledWasm rule); this tells tsc so.
declare module '*.wasm' {
  const m: WebAssembly.Module;
  export default m;
}
