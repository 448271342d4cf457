// es2d's resident memory and CPU share with 30 domains at a 1 s stats interval over a minute: the
// real es2d as a child process, sampled from /proc once a second, /metrics scraped every 30 s as
// the shipped Prometheus job does (deploy/prometheus/es2-scrape.yaml).
//
// The minute is taken in steady state, from a minute after es2d is ready. Start-up (module loading,
// compiling the OpenAPI validators, reconciling every domain) grows V8's heap to about 55 MB
// committed; V8's memory reducer hands most of it back some 25 s later (seen with --trace-gc).
// That start-up peak is reported beside the figure (the kernel's VmHWM), not hidden in it.
import type { Bench } from './bench.js';
import { cpuSeconds, highWaterMiB, rssMiB, startEs2d } from './es2d.js';
import { median, sleep } from './measure.js';

const SCRAPE_EVERY_S = 30;
const STARTUP_S = 60;

export const es2dResources: Bench = {
  name: 'es2d-resources',
  rows: ['es2d-rss', 'es2d-cpu'],
  async run(ctx) {
    const fleet = await ctx.fleet();
    const es2d = await startEs2d(ctx, { statsInterval: 1 });
    const readyRss = rssMiB(es2d.pid);
    await sleep(STARTUP_S * 1000);
    const seconds = ctx.quick ? 20 : 60;
    const rss: number[] = [];
    let scrapes = 0;
    const logFrom = es2d.logs().length;
    const cpu0 = cpuSeconds(es2d.pid);
    const t0 = performance.now();
    for (let s = 0; s < seconds; s++) {
      if (s % SCRAPE_EVERY_S === 0) {
        await es2d.client.send('GET', '/metrics');
        scrapes++;
      }
      rss.push(rssMiB(es2d.pid));
      // Keeps one reading a second whatever the scrape took.
      await sleep(Math.max(0, t0 + (s + 1) * 1000 - performance.now()));
    }
    const wall = (performance.now() - t0) / 1000;
    // VmHWM lags the per-thread RSS counters a little; the reading at ready can be the larger.
    const hwm = Math.max(highWaterMiB(es2d.pid), readyRss);
    // On a shared libvirtd, other tests' domains come and go and es2d converges each: work a
    // quiet host would not see. Counted so that a noisy figure can be told from a real one.
    const foreign = es2d.logs().slice(logFrom).split('\n').filter((l) => l.includes('"message":"apply"') && !l.includes(`"domain":"${fleet.prefix}`)).length;
    const share = (cpuSeconds(es2d.pid) - cpu0) / wall;
    const cycles = (await es2d.client.send<string>('GET', '/metrics')).body;
    const duration = /^es2_collect_duration_seconds (\S+)$/m.exec(cycles)?.[1];
    const common = `${fleet.uuids.length} bench domains, --stats-interval 1, ${wall.toFixed(0)} s, ${scrapes} /metrics scrapes, `
      + `${foreign} converges of other tests' domains meanwhile`;
    return [
      {
        name: 'es2d-rss',
        ratio: Math.max(...rss),
        unit: 'MB',
        anchor: 'absolute: peak VmRSS of the es2d process in MiB, read once a second',
        detail: `peak ${Math.max(...rss).toFixed(1)} MiB, median ${median(rss).toFixed(1)}, first ${(rss[0] as number).toFixed(1)}, last ${(rss.at(-1) as number).toFixed(1)} `
          + `over the minute from ${STARTUP_S} s after ready; start-up: ${readyRss.toFixed(1)} MiB when ready, peak ${hwm.toFixed(1)} MiB (VmHWM); ${common}`,
        goal: { op: '<', value: 120, text: '< 120 MB' },
      },
      {
        name: 'es2d-cpu',
        ratio: share,
        unit: 'core',
        anchor: 'absolute: es2d CPU time (user + system) over wall time, as a share of one core',
        detail: `${(share * 100).toFixed(2)}% of a core; last cycle took ${duration === undefined ? '?' : `${(Number(duration) * 1000).toFixed(0)} ms`} (mostly waiting on libvirtd); ${common}`,
        goal: { op: '<', value: 0.05, text: '< 0.05 (5%)' },
      },
    ];
  },
};
