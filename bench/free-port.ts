import { createServer } from 'node:net';

/** A TCP port on loopback that nothing listens on right now (for a child server to take). */
export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}
