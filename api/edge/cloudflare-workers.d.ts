// The Workers runtime's own module (resolved by wrangler's bundler, not by Node).
declare module 'cloudflare:workers' {
  export abstract class DurableObject<Env = unknown> {
    protected readonly ctx: import('./cf-types.js').DurableObjectState;
    protected readonly env: Env;
    constructor(ctx: import('./cf-types.js').DurableObjectState, env: Env);
  }
}
