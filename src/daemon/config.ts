// es2d configuration: a YAML file (`--config`) under command-line flags (flags win). Validated
// against CONFIG_SCHEMA with ajv: unknown keys are refused with the path that names them.
import { readFileSync } from 'node:fs';

import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';

import { Es2Error, validationFailed } from '../errors/index.js';
import type { FlavorRule } from '../policy/index.js';
import { LOG_LEVELS, type LogLevel } from './logger.js';

export interface OrchestratorConfig {
  url: string;
  token?: string;
  tokenFile?: string;
  header?: { name: string; value: string };
  timeoutMs: number;
  outboxCapacity: number;
}

export interface Config {
  uri: string;
  listen: string[];
  stateDir: string;
  hostRoot: string;
  statsInterval: number;
  tokenFile?: string;
  logLevel: LogLevel;
  socketMode: number;
  socketGroup?: string;
  /** CPUs es2 may pin to, libvirt cpuset syntax; all host CPUs when absent. */
  cpuPool?: string;
  drift: 'repair' | 'report';
  verifyInterval: number;
  rules: FlavorRule[];
  savings: { windowSeconds: number; minIoOps: number; costsNs: Record<string, number> };
  orchestrator?: OrchestratorConfig;
  providerConfig: boolean;
  /** Replay a capture file instead of libvirt's stats (the README demo on test:///default). */
  statsReplay?: string;
}

export const DEFAULTS: Config = {
  uri: 'qemu:///system',
  listen: ['unix:/run/es2/es2d.sock'],
  stateDir: '/var/lib/es2',
  hostRoot: '/',
  statsInterval: 10,
  logLevel: 'info',
  socketMode: 0o660,
  drift: 'repair',
  verifyInterval: 60,
  rules: [],
  savings: { windowSeconds: 60, minIoOps: 1000, costsNs: {} },
  providerConfig: true,
};

const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    uri: { type: 'string', minLength: 1 },
    listen: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(unix:/.+|[^:]+:\\d+|\\[[0-9a-fA-F:]+\\]:\\d+)$' } },
    stateDir: { type: 'string', minLength: 1 },
    hostRoot: { type: 'string', minLength: 1 },
    statsInterval: { type: 'number', exclusiveMinimum: 0, maximum: 3600 },
    tokenFile: { type: 'string', minLength: 1 },
    logLevel: { enum: [...LOG_LEVELS] },
    socketMode: { type: 'string', pattern: '^0?[0-7]{3}$' },
    socketGroup: { type: 'string', pattern: '^[a-z_][a-z0-9_-]*\\$?$' },
    cpuPool: { type: 'string', minLength: 1 },
    drift: { enum: ['repair', 'report'] },
    verifyInterval: { type: 'number', minimum: 0, maximum: 86400 },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['flavor', 'policy'],
        properties: { flavor: { type: 'string', minLength: 1 }, policy: { type: 'object' } },
      },
    },
    savings: {
      type: 'object',
      additionalProperties: false,
      properties: {
        windowSeconds: { type: 'number', exclusiveMinimum: 0 },
        minIoOps: { type: 'integer', minimum: 0 },
        costsNs: { type: 'object', additionalProperties: { type: 'number', minimum: 0 } },
      },
    },
    orchestrator: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        url: { type: 'string', pattern: '^https?://' },
        token: { type: 'string', minLength: 1 },
        tokenFile: { type: 'string', minLength: 1 },
        header: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'value'],
          properties: { name: { type: 'string', pattern: '^[A-Za-z0-9-]+$' }, value: { type: 'string' } },
        },
        timeoutMs: { type: 'integer', minimum: 100 },
        outboxCapacity: { type: 'integer', minimum: 1 },
      },
    },
    providerConfig: { type: 'boolean' },
    statsReplay: { type: 'string', minLength: 1 },
  },
} as const;

const ajv = new Ajv2020({ allErrors: true, strict: true });
const validateFile = ajv.compile(CONFIG_SCHEMA);

/** Flags as parsed from the command line (absent ones are undefined). */
export type ConfigFlags = Partial<Pick<Config, 'uri' | 'stateDir' | 'hostRoot' | 'statsInterval' | 'tokenFile' | 'logLevel'>> & {
  listen?: string[];
  config?: string;
};

function fileError(file: string, message: string, details: { path: string; message: string }[] = []): Es2Error {
  return validationFailed(`config file ${file}: ${message}`, details);
}

/** Reads and validates the YAML config file; returns the keys it sets. */
export function readConfigFile(file: string): Partial<Config> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fileError(file, (err as Error).message);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw fileError(file, `not valid YAML: ${(err as Error).message}`);
  }
  doc ??= {};
  if (!validateFile(doc)) {
    const details = (validateFile.errors ?? []).map((e) => ({
      path: e.keyword === 'additionalProperties'
        ? `${e.instancePath}/${(e.params as { additionalProperty: string }).additionalProperty}`
        : e.instancePath || '/',
      message: e.keyword === 'additionalProperties' ? 'unknown key' : (e.message ?? 'invalid'),
    }));
    throw fileError(file, details.map((d) => `${d.path}: ${d.message}`).join('; '), details);
  }
  const raw = doc as Record<string, unknown>;
  const out = { ...raw } as Partial<Config> & { socketMode?: unknown };
  if (typeof raw.socketMode === 'string') out.socketMode = parseInt(raw.socketMode, 8);
  if (raw.savings !== undefined) out.savings = { ...DEFAULTS.savings, ...(raw.savings as object) };
  if (raw.orchestrator !== undefined) {
    out.orchestrator = { timeoutMs: 5000, outboxCapacity: 10_000, ...(raw.orchestrator as { url: string }) };
  }
  return out as Partial<Config>;
}

/** Defaults, then the config file, then flags. */
export function resolveConfig(flags: ConfigFlags): Config {
  const fromFile = flags.config === undefined ? {} : readConfigFile(flags.config);
  const { config: _file, ...given } = flags;
  const fromFlags = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<Config>;
  const cfg: Config = { ...DEFAULTS, ...fromFile, ...fromFlags };
  const tcp = cfg.listen.some((l) => !l.startsWith('unix:'));
  if (tcp && cfg.tokenFile === undefined) {
    throw validationFailed('a TCP listener accepts writes and needs --token-file', [
      { path: '/tokenFile', message: 'required when listening on HOST:PORT' },
    ]);
  }
  return cfg;
}
