import { startApiServer, type ApiServer, type StartApiOptions } from '../../api/server.js';

/** The Node API for a test: a free loopback port, no settings from the environment, the backend the test chose. */
export function startTestApi(opts: Omit<StartApiOptions, 'env' | 'port' | 'initBackend'>): Promise<ApiServer> {
  return startApiServer({ env: {}, port: 0, initBackend: false, ...opts });
}
