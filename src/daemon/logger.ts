import winston from 'winston';

export type Logger = winston.Logger;
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** JSON lines on stderr: one line per action, with the domain and the result as fields. */
export function createLogger(level: LogLevel = 'info', stream: NodeJS.WritableStream = process.stderr): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    transports: [new winston.transports.Stream({ stream })],
  });
}

/** A logger that drops everything, for tests and offline tools. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
