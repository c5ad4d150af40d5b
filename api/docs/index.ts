import type { App } from '../context.js';
import { route } from '../route.js';
import { routeAsset, servePage, staticAsset } from '../static-assets.js';
import { DOCS_CSS, DOCS_JS, docsHtml } from './assets.js';

/**
 * `/openapi.json` and the API reference at `/docs`. The reference is a small hand-written page (one ES
 * module and one stylesheet held as strings, like the console) that renders /openapi.json in the browser
 * and can send requests: no CDN, no fonts, no third-party bundle. Swagger UI, Redoc and Scalar were
 * measured for this (gzip: swagger-ui-dist 5.35 bundle+css 485 KiB; redoc 3.0 standalone 635 KiB and it
 * fetches icons from cdn.redocly.com; @scalar/api-reference 1.76 standalone 1.36 MiB and it loads fonts
 * from fonts.scalar.com) — all would have needed a text-module rule in the Worker build, and this page is
 * ~6 KiB gzip.
 */
export const OPENAPI_INFO = {
  title: 'VICReg embeddings API',
  version: '1.0.0',
  description:
    'Image embeddings from a VICReg-pretrained backbone: embed, gallery search, classification, model management. Errors are application/problem+json (RFC 9457).',
};

export const DOCS_ASSETS = {
  js: staticAsset(DOCS_JS, 'text/javascript; charset=utf-8'),
  css: staticAsset(DOCS_CSS, 'text/css; charset=utf-8'),
};
export const DOCS_PATHS = { js: `/docs/docs.${DOCS_ASSETS.js.hash}.js`, css: `/docs/docs.${DOCS_ASSETS.css.hash}.css` };

/** Same origin only, as the console: the page loads its own script and style and calls only this API. */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function registerDocs(app: App): void {
  route(
    app,
    {
      method: 'get',
      path: '/openapi.json',
      operationId: 'openapi',
      tags: ['ops'],
      security: [],
      summary: 'This API as OpenAPI 3.1',
      description: 'The document clients are generated from. Its single server is the origin it was fetched from.',
      responses: { 200: { description: 'OpenAPI document', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
    (c) =>
      c.json(
        app.getOpenAPI31Document({
          openapi: '3.1.0',
          info: OPENAPI_INFO,
          servers: [{ url: new URL(c.req.url).origin, description: 'This server' }],
        }),
      ),
  );

  const page = servePage(docsHtml(DOCS_PATHS), DOCS_CSP);
  route(
    app,
    {
      method: 'get',
      path: '/docs',
      operationId: 'docs',
      tags: ['ops'],
      security: [],
      summary: 'API reference (HTML), rendered from /openapi.json',
      responses: { 200: { description: 'HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
    },
    page,
  );
  for (const key of ['js', 'css'] as const) routeAsset(app, DOCS_PATHS[key], DOCS_ASSETS[key]);
}
