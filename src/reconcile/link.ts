import { EventEmitter } from 'node:events';

import { Es2Error } from '../errors/index.js';
import {
  Connection,
  formatVersion,
  isConnectionLost,
  type LifecycleEvent,
  type MetadataEvent,
  type TunableEvent,
} from '../libvirt/index.js';
import type { Logger } from '../daemon/logger.js';

interface LinkEvents {
  connected: [Connection];
  disconnected: [string];
  lifecycle: [LifecycleEvent];
  tunable: [TunableEvent];
  metadata: [MetadataEvent];
}

export interface LinkOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * Keeps es2d connected to libvirt: connects, notices a dropped connection (libvirt's close
 * callback, or a call that failed because the connection is gone), and reconnects with
 * exponential backoff. es2d stays up the whole time; `/readyz` follows `connected`.
 */
export class LibvirtLink extends EventEmitter<LinkEvents> {
  private current: Connection | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private connecting: Promise<void> | undefined;

  constructor(
    readonly uri: string,
    private readonly logger: Logger,
    private readonly options: LinkOptions = {},
  ) {
    super();
    this.backoffMs = options.minBackoffMs ?? 500;
  }

  get connected(): boolean {
    return this.current?.isOpen ?? false;
  }

  /** The live connection, or LIBVIRT_UNAVAILABLE. */
  require(): Connection {
    const c = this.current;
    if (c === undefined || !c.isOpen) {
      throw new Es2Error('LIBVIRT_UNAVAILABLE', `not connected to libvirt at ${this.uri}; reconnecting`);
    }
    return c;
  }

  /** Connects now; on failure keeps retrying in the background. Resolves after the first attempt. */
  start(): Promise<void> {
    this.stopped = false;
    return this.attempt();
  }

  /** A libvirt call failed: if the connection is gone, drop it and reconnect. */
  noteFailure(err: unknown): void {
    if (isConnectionLost(err) && this.current !== undefined) this.drop(`call failed: ${(err as Error).message}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.connecting;
    const c = this.current;
    this.current = undefined;
    if (c !== undefined) await c.close(2000);
  }

  private attempt(): Promise<void> {
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<void> {
    if (this.stopped || this.connected) return;
    try {
      const conn = await Connection.open(this.uri);
      if (this.stopped) {
        await conn.close();
        return;
      }
      conn.on('closed', (e) => this.drop(`libvirt closed the connection (${e.reason})`));
      conn.on('lifecycle', (e) => this.emit('lifecycle', e));
      conn.on('tunable', (e) => this.emit('tunable', e));
      conn.on('metadata', (e) => this.emit('metadata', e));
      this.current = conn;
      this.backoffMs = this.options.minBackoffMs ?? 500;
      this.logger.info('libvirt connected', { uri: this.uri, libvirt: formatVersion(await conn.getLibVersion()) });
      this.emit('connected', conn);
    } catch (err) {
      this.logger.warn('libvirt connection failed', { uri: this.uri, error: (err as Error).message, retryMs: this.backoffMs });
      this.schedule();
    }
  }

  private drop(reason: string): void {
    const c = this.current;
    if (c === undefined) return;
    this.current = undefined;
    c.removeAllListeners();
    void c.close(0).catch(() => undefined);
    this.logger.warn('libvirt disconnected', { uri: this.uri, reason });
    this.emit('disconnected', reason);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 10_000);
    this.timer = setTimeout(() => void this.attempt(), delay);
  }
}
