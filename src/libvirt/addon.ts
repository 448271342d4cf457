// The single place that loads the native addon (native/). Everything else uses ./index.ts.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

import { packageFile } from '../package/root.js';
import type { NativeModule } from './native-types.js';

let loaded: NativeModule | undefined;

export function nativeAddon(): NativeModule {
  if (loaded === undefined) {
    const file = packageFile('native', 'build', 'Release', 'es2_libvirt.node');
    if (!existsSync(file)) {
      throw new Error(`es2: the libvirt addon is not built (${file} is missing); run \`npm run build\``);
    }
    loaded = createRequire(import.meta.url)(file) as NativeModule;
  }
  return loaded;
}
