// `es2ctl savings [REF] [--watch]` and `es2ctl baseline REF`: the live savings reports of es2d.
// (`savings analyze`, the offline form, is registered on the same `savings` command elsewhere.)
import { InvalidArgumentError, Option, type Command } from 'commander';

import { Es2Error } from '../errors/index.js';
import { clientFor, domainPath, emit, outputFormat, withExamples, type OutputFormat, type Schemas } from './online.js';
import { formatFields, formatTable } from './table.js';

type SavingsReport = Schemas['SavingsReport'];
type BaselineRecord = Schemas['BaselineRecord'];

const CONFIDENCE_NOTES: Record<SavingsReport['confidence'], string | null> = {
  'ok': null,
  'no-kvm-stats': 'libvirt gives no KVM exit counters for the domain (test driver, TCG, or no query-stats): exit rates cannot be measured',
  'no-baseline': 'no baseline yet: `es2ctl baseline REF` takes one from the current window',
  'insufficient-data': 'too few I/O operations in a window for per-I/O ratios to mean much',
};

/** The `--watch` redraw interval; es2d samples every few seconds, so faster redraws show nothing new. */
function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < 0.2) throw new InvalidArgumentError('expects seconds, at least 0.2.');
  return n;
}

function fixed(x: number | null | undefined, digits: number): string {
  return x === null || x === undefined ? '-' : x.toFixed(digits);
}

function percent(x: number | null | undefined, digits: number): string {
  return x === null || x === undefined ? '-' : `${(x * 100).toFixed(digits)}%`;
}

/** One line per VM with the exit totals (per-reason figures are in `-o json`), then what each confidence means. */
export function renderSavings(reports: readonly SavingsReport[]): string {
  if (reports.length === 0) return 'no running domain has savings data yet (es2d reports running domains after its first stats samples)\n';
  const table = formatTable(
    ['NAME', 'EXITS/S', 'EXITS/IO', 'BASE EXITS/IO', 'REDUCTION', 'AVOIDED/S', 'EHT BEFORE', 'EHT AFTER', 'CONFIDENCE'],
    reports.map((r) => [
      r.name, fixed(r.current.byReason.exits.perSecond, 1), fixed(r.current.byReason.exits.perIoOp, 3),
      fixed(r.baseline?.byReason.exits.perIoOp, 3), percent(r.savings.byReason.exits?.reduction, 1),
      fixed(r.savings.byReason.exits?.avoidedPerSecond, 1), percent(r.savings.ehtBefore, 3), percent(r.savings.ehtAfter, 3),
      r.confidence,
    ]));
  const notes = [...new Set(reports.map((r) => r.confidence))]
    .flatMap((c) => (CONFIDENCE_NOTES[c] === null ? [] : [`${c}: ${CONFIDENCE_NOTES[c]}\n`]));
  return table + (notes.length === 0 ? '' : `\n${notes.join('')}`);
}

function renderBaseline(record: BaselineRecord): string {
  const b = record.baseline;
  return formatFields([
    ['domain', record.uuid], ['captured at', record.capturedAt], ['window', `${b.start} (${b.seconds.toFixed(1)} s)`],
    ['I/O ops/s', fixed(b.ioOpsPerSecond, 1)], ['vCPUs', b.vcpus],
    ['KVM exit stats', b.hasKvmStats ? 'yes' : `no: ${CONFIDENCE_NOTES['no-kvm-stats']}`],
    ['exits/s', fixed(b.byReason.exits.perSecond, 1)], ['exits/I/O op', fixed(b.byReason.exits.perIoOp, 3)],
  ]);
}

/**
 * Redraws until SIGINT (or the reader of a pipe leaves), which ends the command normally (exit 0). On a terminal each frame
 * replaces the last; into a pipe or file the frames follow one another, so nothing is lost.
 * A failure of the first fetch ends the command (a wrong REF or endpoint shows at once); later
 * failures (es2d restarting) are shown in the frame and the watch goes on.
 */
async function watch<T>(format: OutputFormat, intervalS: number, fetch: () => Promise<T>, render: (body: T) => string): Promise<void> {
  let stopped = false;
  let wake = (): void => {};
  const onSigint = (): void => {
    stopped = true;
    wake();
  };
  // A reader that goes away (`| head`) ends the watch as Ctrl-C would, instead of an EPIPE crash.
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    onSigint();
  };
  process.on('SIGINT', onSigint);
  process.stdout.on('error', onStdoutError);
  const tty = process.stdout.isTTY === true;
  try {
    for (let frame = 0; !stopped; frame++) {
      let text: string;
      try {
        const body = await fetch();
        text = format === 'json' ? `${JSON.stringify(body, null, 2)}\n` : render(body);
      } catch (err) {
        if (frame === 0 || !(err instanceof Es2Error)) throw err;
        text = `es2ctl: ${err.code}: ${err.message}\n`;
      }
      if (format === 'json') {
        process.stdout.write(text);
      } else {
        const title = `every ${intervalS}s: es2ctl savings, ${new Date().toISOString()} (Ctrl-C to stop)\n\n`;
        process.stdout.write(tty ? `\x1b[H\x1b[2J${title}${text}` : `${frame === 0 ? '' : '\n'}${title}${text}`);
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalS * 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', onSigint);
    process.stdout.off('error', onStdoutError);
  }
}

/** Adds the live form to the `savings` command that also carries `savings analyze`. */
export function registerSavingsCommands(program: Command, savings: Command): void {
  withExamples(savings
    .description('per-VM exit savings: live from es2d, or `savings analyze` on two capture files offline')
    .argument('[ref]', 'one domain (UUID or name); all running domains when left out')
    .option('--watch', 'redraw the table until interrupted (Ctrl-C)')
    .addOption(new Option('--interval <seconds>', 'seconds between redraws with --watch').default(2).argParser(seconds)),
  'es2ctl savings', 'es2ctl savings test --watch --interval 5',
  'es2ctl savings analyze --baseline before.txt --current after.txt')
    .action(async (ref: string | undefined, opts: { watch?: boolean; interval: number }, cmd: Command) => {
      const format = outputFormat(cmd);
      const client = clientFor(cmd);
      const fetch = async (): Promise<SavingsReport[] | SavingsReport> =>
        (await client.send<SavingsReport[] | SavingsReport>('GET', ref === undefined ? '/v1/savings' : domainPath(ref, '/savings'))).body;
      const render = (body: SavingsReport[] | SavingsReport): string => renderSavings(Array.isArray(body) ? body : [body]);
      if (opts.watch === true) await watch(format, opts.interval, fetch, render);
      else emit(format, await fetch(), render);
    });

  withExamples(program.command('baseline')
    .description("take a domain's savings baseline now from its current window (replaces the stored one); do it before enabling ES2")
    .argument('<ref>', 'domain UUID or name'),
  'es2ctl baseline test')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const format = outputFormat(cmd);
      emit(format, (await clientFor(cmd).send<BaselineRecord>('POST', domainPath(ref, '/baseline'))).body, renderBaseline);
    });
}
