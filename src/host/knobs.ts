// Host-global KVM knobs, shared by every domain that asks for them. The journal in the store keeps,
// per knob, the value found before es2 first wrote it and who holds it now; the value in force is
// the largest any holder asked for. There is deliberately no rollback on es2d exit (tuned learned
// that restoring on exit causes outages): originals come back when the last holder lets go, or
// when an operator asks (`DELETE /v1/host/knobs`, `es2ctl host knobs restore`), also after a restart.
import type { Logger } from 'winston';

import { Es2Error, validationFailed } from '../errors/index.js';
import type { KnobJournalEntry, Store } from '../store/index.js';
import { readHostFile, writeHostFile } from './files.js';
import { KNOB_PATHS, isKnobName, type HostRoot, type KnobName } from './paths.js';

/** The holder for knobs an operator sets through `PUT /v1/host/knobs`. */
export const OPERATOR_HOLDER = 'operator';

// The KVM halt-poll parameters are `unsigned int`.
const KNOB_MAX = 0xffff_ffff;
const HOLDER_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface KnobState extends KnobJournalEntry {
  knob: KnobName;
  /** Relative to the host root. */
  path: string;
}

export interface KnobWrite {
  knob: KnobName;
  from: number;
  to: number;
}

function checkValue(knob: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > KNOB_MAX) {
    throw validationFailed(`${knob} must be an integer from 0 to ${KNOB_MAX}, got ${value}`,
      [{ path: `/${knob}`, message: 'out of range' }]);
  }
}

function checkHolder(holder: string): void {
  if (!HOLDER_RE.test(holder)) throw validationFailed(`knob holder ${JSON.stringify(holder)} is not a UUID or a plain name`);
}

function inForce(holders: Record<string, number>): number {
  return Math.max(...Object.values(holders));
}

export class KnobManager {
  private readonly store: Store;
  private readonly host: HostRoot;
  private readonly logger: Logger | undefined;

  constructor(store: Store, host: HostRoot, logger?: Logger) {
    this.store = store;
    this.host = host;
    this.logger = logger;
  }

  /**
   * `holder` (a domain UUID or OPERATOR_HOLDER) asks for `value`; a second call replaces its
   * request. Writes the knob only when the value in force changes. Returns the journal entry.
   */
  hold(holder: string, knob: KnobName, value: number): KnobState {
    checkHolder(holder);
    if (!isKnobName(knob)) throw validationFailed(`${JSON.stringify(knob)} is not a knob es2 manages`);
    checkValue(knob, value);
    const path = this.host.knob(knob);
    // The original is committed on its own before anything is written, so a crash between the
    // write and the journal update cannot lose it. A leftover entry without holders keeps the
    // original it recorded: the file may already hold es2's value by then.
    this.store.transaction(() => {
      if (this.store.getKnob(knob) === undefined) {
        const original = this.readKnob(knob, path);
        this.store.putKnob({ knob, original, current: original, holders: {} });
      }
    });
    return this.store.transaction(() => {
      const entry = this.store.getKnob(knob) as KnobJournalEntry;
      const holders = { ...entry.holders, [holder]: value };
      const next = this.settle(knob, path, entry, holders);
      return this.state(next);
    });
  }

  /**
   * Drops the requests of `holder` (on every knob, or on `only`). A knob whose last holder goes
   * gets its original back and leaves the journal; otherwise the value in force is recomputed.
   * Returns the writes made.
   */
  release(holder: string, only?: KnobName): KnobWrite[] {
    return this.store.transaction(() => {
      const writes: KnobWrite[] = [];
      for (const entry of this.store.listKnobs()) {
        if (!Object.hasOwn(entry.holders, holder) || !isKnobName(entry.knob)) continue;
        if (only !== undefined && entry.knob !== only) continue;
        const holders = { ...entry.holders };
        delete holders[holder];
        const before = entry.current;
        const after = this.settle(entry.knob, this.host.knob(entry.knob), entry, holders);
        if (after.current !== before) writes.push({ knob: entry.knob, from: before, to: after.current });
      }
      return writes;
    });
  }

  /** Writes every original back and empties the journal, whoever held the knobs. */
  restoreAll(): KnobWrite[] {
    return this.store.transaction(() => {
      const writes: KnobWrite[] = [];
      for (const entry of this.store.listKnobs()) {
        if (!isKnobName(entry.knob)) continue;
        const after = this.settle(entry.knob, this.host.knob(entry.knob), entry, {});
        writes.push({ knob: entry.knob, from: entry.current, to: after.current });
      }
      return writes;
    });
  }

  list(): KnobState[] {
    return this.store.listKnobs().filter((entry) => isKnobName(entry.knob)).map((entry) => this.state(entry));
  }

  /**
   * Brings the knob and its journal entry to `holders`: the largest request, or the original
   * once nobody holds it. The file is written inside the caller's transaction, so a failed write
   * leaves the journal as it was.
   */
  private settle(knob: KnobName, path: string, entry: KnobJournalEntry, holders: Record<string, number>): KnobJournalEntry {
    const released = Object.keys(holders).length === 0;
    const target = released ? entry.original : inForce(holders);
    if (target !== entry.current || released) {
      writeHostFile(path, target);
      this.logger?.info(`host knob ${knob}: ${entry.current} -> ${target}`, { knob, from: entry.current, to: target, holders: Object.keys(holders) });
    }
    const next = { knob, original: entry.original, current: target, holders };
    if (released) this.store.deleteKnob(knob);
    else this.store.putKnob(next);
    return next;
  }

  private readKnob(knob: KnobName, path: string): number {
    const text = readHostFile(path);
    if (text === undefined) throw new Es2Error('HOST_UNSUPPORTED', `this host has no ${knob} (${KNOB_PATHS[knob]} is missing)`);
    const value = Number(text.trim());
    if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
      throw new Es2Error('INTERNAL', `${path} holds ${JSON.stringify(text)}, not a number`);
    }
    return value;
  }

  private state(entry: KnobJournalEntry): KnobState {
    return { ...entry, knob: entry.knob as KnobName, path: KNOB_PATHS[entry.knob as KnobName] };
  }
}
