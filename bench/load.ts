// A small HTTP load client for the api-read benchmark: keep-alive connections over a UNIX
// socket, a fixed number of requests in flight, a fixed request count. The same client (and the
// same process) drives both servers, so its own cost is on both sides of the ratio.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface LoadOptions {
  requests: number;
  concurrency: number;
}

/** Requests per second of GET `path` on the server at `socketPath`; any status but 200 throws. */
export async function requestsPerSecond(socketPath: string, path: string, options: LoadOptions): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  let issued = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = request({ socketPath, path, method: 'GET', agent, headers: { accept: 'application/json' } }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new Error(`GET ${path} answered ${res.statusCode}`));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (issued < options.requests) {
      issued++;
      await one();
    }
  };
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    return options.requests / ((performance.now() - t0) / 1000);
  } finally {
    agent.destroy();
  }
}
