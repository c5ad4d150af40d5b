import type { App } from '../context.js';
import { route } from '../route.js';
import { routeAsset, routeFixedAsset, servePage, staticAsset } from '../static-assets.js';
import { CONSOLE_CSS } from './assets/style.js';
import { CONSOLE_ICON } from './assets/icon.js';
import { CONSOLE_JS } from './assets/script.js';
import { consoleHtml } from './assets/page.js';

/**
 * The web console at `/`: one HTML page, one ES module and one stylesheet, held as string constants so
 * the Node server and the Worker bundle serve them with no asset configuration and no build step. The
 * page talks only to the public /v1 and /admin routes of its own origin; its Content-Security-Policy
 * forbids every other origin (no CDN, no fonts, no analytics).
 */
export const CONSOLE_ASSETS = {
  js: staticAsset(CONSOLE_JS, 'text/javascript; charset=utf-8'),
  css: staticAsset(CONSOLE_CSS, 'text/css; charset=utf-8'),
  icon: staticAsset(CONSOLE_ICON, 'image/svg+xml; charset=utf-8'),
};

/** Content-addressed URLs: the HTML names them, so they can be cached for ever. */
export const CONSOLE_PATHS = {
  js: `/console/app.${CONSOLE_ASSETS.js.hash}.js`,
  css: `/console/app.${CONSOLE_ASSETS.css.hash}.css`,
  icon: `/console/icon.${CONSOLE_ASSETS.icon.hash}.svg`,
};


/** Same-origin only: the page may load and call nothing else (blob: for previews of picked images). */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function registerConsole(app: App): void {
  const page = servePage(consoleHtml(CONSOLE_PATHS), CONSOLE_CSP);
  route(app, { method: 'get', path: '/', hide: true, responses: { 200: { description: 'The web console' } } }, page);
  route(app, { method: 'get', path: '/console', hide: true, responses: { 200: { description: 'The web console' } } }, page);
  for (const key of ['js', 'css', 'icon'] as const) routeAsset(app, CONSOLE_PATHS[key], CONSOLE_ASSETS[key]);
  // Browsers ask for /favicon.ico on their own; answer with the icon instead of a 404 problem.
  routeFixedAsset(app, '/favicon.ico', CONSOLE_ASSETS.icon);
}
