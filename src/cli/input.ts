// Reading the CLI's input files: a path or `-` for stdin; policies as JSON or YAML.
import { readFile } from 'node:fs/promises';

import { parse as parseYaml } from 'yaml';

import { validationFailed } from '../errors/index.js';

export async function readInputText(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  return readFile(file, 'utf8').catch((err: Error) => {
    throw validationFailed(`cannot read ${file}: ${err.message}`, [{ path: file, message: 'unreadable' }]);
  });
}

/** A policy document as written (JSON is YAML too), not validated yet. */
export async function readPolicyDocument(file: string): Promise<unknown> {
  const text = await readInputText(file);
  try {
    return parseYaml(text);
  } catch (err) {
    throw validationFailed(`${file} is neither JSON nor YAML: ${(err as Error).message}`, [{ path: '', message: 'unparseable' }]);
  }
}
