// The single place that loads the native addon (native/). Everything else uses ./index.ts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { NativeModule } from './native-types.js';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('es2: package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

let loaded: NativeModule | undefined;

export function nativeAddon(): NativeModule {
  if (loaded === undefined) {
    const file = join(packageRoot(), 'native', 'build', 'Release', 'es2_libvirt.node');
    if (!existsSync(file)) {
      throw new Error(`es2: the libvirt addon is not built (${file} is missing); run \`npm run build\``);
    }
    loaded = createRequire(import.meta.url)(file) as NativeModule;
  }
  return loaded;
}
