// What app.ts hands every feature module.
import type { Config } from '../config.js';

export interface ModuleOptions {
  config: Config;
}

/** A worker process (ROLE=worker) runs the modules' background jobs but serves no API routes. */
export const servesRoutes = (config: Config): boolean => config.role !== 'worker';
