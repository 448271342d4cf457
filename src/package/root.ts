import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The es2 package root (the folder of package.json), found from this file in src/ or dist/src/. */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('es2: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export const packageRoot = findPackageRoot();

/** A file shipped with the package (`openapi/es2.yaml`, the native addon, deploy files). */
export function packageFile(...parts: string[]): string {
  return join(packageRoot, ...parts);
}
