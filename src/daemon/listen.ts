// Listeners for es2d: UNIX sockets (the default; access by file mode and group) and TCP.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';

import { Es2Error } from '../errors/index.js';

/** Written by the libvirt hook beside the socket when es2d let a call time out. */
export const HOOK_UNRESPONSIVE_MARKER = '.es2-hook-unresponsive';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseListen(spec: string): ListenAddress {
  if (spec.startsWith('unix:')) return { kind: 'unix', path: spec.slice(5) };
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(spec);
  if (m === null || Number(m[2]) > 65535) {
    throw new Es2Error('VALIDATION_FAILED', `bad listen address ${JSON.stringify(spec)}`, {
      details: [{ path: '/listen', message: 'expected unix:PATH or HOST:PORT' }],
    });
  }
  return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

/** True when something accepts connections on the socket (another es2d). */
function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function groupId(name: string): number {
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [g, , gid] = line.split(':');
    if (g === name && gid !== undefined) return Number(gid);
  }
  throw new Es2Error('VALIDATION_FAILED', `socket group ${JSON.stringify(name)} does not exist`, {
    details: [{ path: '/socketGroup', message: 'no such group in /etc/group' }],
  });
}

function errorBody(message: string, detail: string): string {
  return JSON.stringify(new Es2Error('VALIDATION_FAILED', message, { details: [{ path: '', message: detail }] }).toJSON());
}

/**
 * The Error body for a request Node's parser refused; the connection closes after it. Like Node's
 * own handler, nothing is written once a response has begun on the connection (the parser can
 * fail on the body of a request the app is already answering).
 */
function answerUnparsable(err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const what = err.code === 'HPE_HEADER_OVERFLOW' ? 'request headers are larger than this server accepts'
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'the request was not received in time'
      : `malformed HTTP request: ${err.reason ?? err.message}`;
  const body = errorBody(what, err.code ?? 'unparsable');
  socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * RFC 9112 3.2 wants a 400 for an HTTP/1.1 request without Host; Node sends it bodiless, so its
 * check is off and this one answers with the Error body.
 */
function requireHost(handler: RequestListener): RequestListener {
  return (req, res) => {
    if (req.httpVersion === '1.1' && req.headers.host === undefined) {
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', connection: 'close' })
        .end(errorBody('an HTTP/1.1 request needs a Host header', 'no Host header'));
      return;
    }
    handler(req, res);
  };
}

export interface BoundListener {
  server: Server;
  address: ListenAddress;
  /** `unix:PATH` or `http://HOST:PORT` with the real port (for port 0). */
  url: string;
}

export async function bind(
  spec: string,
  handler: RequestListener,
  socket: { mode: number; group?: string | undefined },
): Promise<BoundListener> {
  const address = parseListen(spec);
  const server = createServer({ requireHostHeader: false }, requireHost(handler));
  // Requests and keep-alive idle sockets must not keep a shutting-down es2d waiting for long.
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 60_000;
  // Node answers these itself, outside the app, with bodies that are not the one Error schema: a
  // request it cannot parse (400, 431 for oversized headers, 408 when it comes too slowly), one
  // without Host, and an `Expect` other than 100-continue (417). The first two get the Error body
  // here; the last is served as usual (RFC 9110 10.1.1 lets a server ignore an expectation).
  server.on('clientError', answerUnparsable);
  server.on('checkExpectation', requireHost(handler));
  if (address.kind === 'unix') {
    mkdirSync(dirname(address.path), { recursive: true });
    const existing = lstatOrUndefined(address.path);
    if (existing !== undefined) {
      // Only a socket is ever removed: a mistyped --listen must not delete somebody's file.
      if (!existing.isSocket()) {
        throw new Es2Error('CONFLICT', `${address.path} exists and is not a socket; es2d removes only stale sockets`);
      }
      if (await socketAlive(address.path)) {
        throw new Es2Error('CONFLICT', `another process is serving ${address.path}`);
      }
      // A socket file left by a killed es2d: nobody answers on it.
      unlinkSync(address.path);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.path, () => resolve());
    });
    chmodSync(address.path, socket.mode);
    // The hook stops waiting for es2d after a timeout (deploy/libvirt/hooks/qemu.d/50-es2); an es2d
    // serving the socket again is worth waiting for at once.
    rmSync(join(dirname(address.path), HOOK_UNRESPONSIVE_MARKER), { force: true });
    if (socket.group !== undefined) chownSync(address.path, -1, groupId(socket.group));
    return { server, address, url: `unix:${address.path}` };
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const real = server.address() as AddressInfo;
  const host = real.family === 'IPv6' ? `[${real.address}]` : real.address;
  return { server, address: { ...address, port: real.port }, url: `http://${host}:${real.port}` };
}

export function closeServer(l: BoundListener): Promise<void> {
  return new Promise((resolve) => {
    // Requests in flight finish; their keep-alive connections turn idle only afterwards, so idle
    // ones are closed again until the server is done instead of waiting out keepAliveTimeout.
    const sweep = setInterval(() => l.server.closeIdleConnections(), 50);
    l.server.close(() => {
      clearInterval(sweep);
      if (l.address.kind === 'unix' && existsSync(l.address.path)) {
        try {
          unlinkSync(l.address.path);
        } catch {
          // already gone
        }
      }
      resolve();
    });
    l.server.closeIdleConnections();
  });
}
