// Reading and writing the small text files of sysfs/procfs (or their mirror under a temp root).
import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';

import { Es2Error } from '../errors/index.js';

/** The file's text without the trailing newline; undefined when it does not exist. */
export function readHostFile(path: string): string | undefined {
  return readTextFile(path)?.replace(/\n$/, '');
}

/** The file's text as it is; undefined when it does not exist. */
export function readTextFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Es2Error('INTERNAL', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Writes `value` and a newline to an existing file. Never creates one (a missing sysfs file means
 * the host lacks the feature: HOST_UNSUPPORTED) and never follows a symlink at the last step.
 */
export function writeHostFile(path: string, value: string | number): void {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
    try {
      // One write call: sysfs takes the value from the first write(2) of an open file.
      writeSync(fd, `${value}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Es2Error('HOST_UNSUPPORTED', `${path} does not exist on this host`, { cause: err });
    throw new Es2Error('INTERNAL', `cannot write ${value} to ${path}: ${(err as Error).message}`, { cause: err });
  }
}
